//! `gdn-install-files DIR`: writes the generated files the installation
//! needs (the Makefile runs it at build time; it is not installed):
//!
//! ```text
//! DIR/man1/guix-docker-native.1               the man page
//! DIR/completions/guix-docker-native.bash     bash completion
//! DIR/completions/_guix-docker-native         zsh completion
//! DIR/completions/guix-docker-native.fish     fish completion
//! DIR/guix_docker_native.map                  the library's version script
//! ```
//!
//! The man page and the completions are made from the program's own clap
//! definition: this compiles its `src/cli` module (not a copy), so they
//! cannot drift from `--help`, and an option added there appears here
//! without a change.  The version script is the one build.rs made from the
//! header.

// The whole of the program's `cli` module, as src/main.rs declares it; this
// program uses only `args`, so the rest is dead code here.
#[allow(dead_code, unused_imports)]
#[path = "../cli/mod.rs"]
mod cli;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

const PROGRAM: &str = "guix-docker-native";

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [dir] = args.as_slice() else {
        eprintln!("usage: gdn-install-files DIR (writes the man page, completions and version script there)");
        return ExitCode::from(2);
    };
    match write_all(dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("gdn-install-files: error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn write_all(dir: &Path) -> Result<(), String> {
    write_file(&dir.join("man1").join(format!("{PROGRAM}.1")), &man_page()?)?;
    for (shell, name) in [
        (Shell::Bash, format!("{PROGRAM}.bash")),
        (Shell::Zsh, format!("_{PROGRAM}")),
        (Shell::Fish, format!("{PROGRAM}.fish")),
    ] {
        let mut text = Vec::new();
        clap_complete::generate(shell, &mut cli::args::Cli::command(), PROGRAM, &mut text);
        write_file(&dir.join("completions").join(name), &text)?;
    }
    write_file(&dir.join("guix_docker_native.map"), include_str!(env!("GDN_VERSION_SCRIPT")).as_bytes())
}

/// The command with each option's visible aliases named in its help, as
/// `--help` shows them: clap_mangen leaves aliases out of the page.
fn with_aliases_in_help(command: clap::Command) -> clap::Command {
    command.mut_args(|arg| {
        let Some(aliases) = arg.get_visible_aliases().filter(|a| !a.is_empty()) else {
            return arg;
        };
        let names: Vec<String> = aliases.iter().map(|a| format!("--{a}")).collect();
        let help = arg.get_long_help().or(arg.get_help()).map(|h| h.to_string()).unwrap_or_default();
        let text = format!("{help}\n\n[alias: {}]", names.join(", "));
        arg.long_help(text)
    })
}

/// The man page: clap_mangen's rendering of the command, with the text
/// that follows the options under a heading that says what it holds, and
/// a SEE ALSO section.  No date, so that the same sources give the same
/// bytes.
fn man_page() -> Result<Vec<u8>, String> {
    let command = with_aliases_in_help(cli::args::Cli::command());
    let version = command.get_version().unwrap_or_default().to_string();
    let man = clap_mangen::Man::new(command);
    let mut page = Vec::new();
    man.render(&mut page).map_err(|err| format!("rendering the man page: {err}"))?;
    let page = String::from_utf8(page).map_err(|err| format!("the man page is not UTF-8: {err}"))?;
    // The title line, with an explicit empty date (clap_mangen leaves the
    // field out, which shifts the source and manual into the wrong places).
    let title = format!(".TH {PROGRAM} 1 \"\" \"{PROGRAM} {version}\" \"User Commands\"");
    let mut titled = false;
    let page: String = page
        .lines()
        .map(|line| {
            if line.starts_with(".TH ") && !titled {
                titled = true;
                format!("{title}\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    if !titled {
        return Err("clap_mangen no longer writes a .TH line; update gdn-install-files".into());
    }
    let extra = ".SH EXTRA\n";
    if !page.contains(extra) {
        return Err("clap_mangen no longer writes an EXTRA section; update gdn-install-files".into());
    }
    let mut page = page.replacen(extra, ".SH \"EXAMPLES, PROGRESS, SIGNALS, EXIT STATUS\"\n", 1);
    page.push_str(
        ".SH \"SEE ALSO\"\n\
         \\fBguix\\-archive\\-docker \\-\\-help\\fR (\\fBguix archive \\-\\-export \\-\\-format=docker\\fR, \
         installed with this program), \\fBguix pack \\-f docker\\fR, \\fBdocker\\-load\\fR(1), \
         \\fBpodman\\-load\\fR(1), \\fBskopeo\\-copy\\fR(1)\n",
    );
    Ok(page.into_bytes())
}

/// Writes `contents` to `path`, creating its directory; leaves the file
/// alone when it already holds them, so that its mtime (which the Makefile
/// goes by) changes only with its contents.
fn write_file(path: &Path, contents: &[u8]) -> Result<(), String> {
    if fs::read(path).ok().as_deref() == Some(contents) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|err| format!("{}: {err}", parent.display()))?;
    }
    let mut file = fs::File::create(path).map_err(|err| format!("{}: {err}", path.display()))?;
    file.write_all(contents).map_err(|err| format!("{}: {err}", path.display()))
}
