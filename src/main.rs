//! `guix-docker-native [OPTIONS] ITEM...`: the command-line front end of the
//! library.  `--help` documents it; README.md too.

mod cli;

use std::io::{IsTerminal, Write};
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;

use guix_docker_native::closure::read_closure_file_cancellable;
use guix_docker_native::{
    build_image, build_platform_images, default_output_name, descriptor_of, is_standard_output, refuse_inputs, Destination,
    Error, ErrorKind, Input, LayerState, Output, PushReport, Result, StoreDir,
};

use cli::args::{Cli, OutputChoice};
use cli::progress::{ProgressBar, PushBars};
use cli::signals::{signal_name, Interrupts};

const PROGRAM: &str = "guix-docker-native";

fn main() {
    // Before any thread starts (src/cli/malloc.rs says why).
    cli::malloc::tune();
    std::process::exit(run());
}

/// Runs the program and returns its exit status.
fn run() -> i32 {
    let cli = match cli::args::parse(std::env::args_os()) {
        Ok(cli) => cli,
        Err(err) => return report_usage_error(err),
    };
    let interrupts = match Interrupts::install() {
        Ok(interrupts) => interrupts,
        Err(err) => {
            eprintln!("{PROGRAM}: error: cannot install signal handlers: {err}");
            return ErrorKind::Io.code();
        }
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| build(&cli, &interrupts)))
        .unwrap_or_else(|panic| Err(Error::new(ErrorKind::Panic, format!("internal error: {}", panic_text(&*panic)))));
    match outcome {
        Ok(Some(name)) => {
            let mut out = std::io::stdout().lock();
            match out.write_all(name.as_os_str().as_bytes()).and_then(|()| out.write_all(b"\n")).and_then(|()| out.flush()) {
                Ok(()) => 0,
                Err(err) => {
                    eprintln!(
                        "{PROGRAM}: error: the archive was written to '{}', but its name could not be printed on standard output: {err}",
                        name.display()
                    );
                    ErrorKind::Output.code()
                }
            }
        }
        Ok(None) => 0,
        Err(err) => report_error(&err, &interrupts),
    }
}

/// Builds the archive; returns the file name to print (none for `-o -`).
fn build(cli: &Cli, interrupts: &Interrupts) -> Result<Option<PathBuf>> {
    let mut options = cli.image_options()?;
    let choice = cli.output_choice()?;
    if let OutputChoice::Registry(reference) = choice {
        return push(cli, interrupts, options, reference);
    }
    cli.add_default_tag(&mut options)?;
    options.set_cancel(Some(Arc::clone(&interrupts.cancel)));
    let (destination, name) = match choice {
        OutputChoice::Default => {
            let item = StoreDir::new(options.store_dir())?.parse_item(&cli.main_item()?)?;
            let name = PathBuf::from(default_output_name(&item, &options));
            (Destination::DockerArchive(Output::Path(name.clone())), Some(name))
        }
        OutputChoice::Stdout => (Destination::DockerArchive(Output::Stdout), None),
        OutputChoice::File(path) => (Destination::DockerArchive(Output::Path(path.clone())), Some(path)),
        // Printed as skopeo and podman take it, with the ref name used.
        OutputChoice::Oci(destination) => {
            let (transport, path) = match &destination {
                Destination::OciLayout { dir, .. } => ("oci", dir),
                Destination::OciArchive { file, .. } => ("oci-archive", file),
                Destination::DockerArchive(_) | Destination::Registry(_) => unreachable!("a docker-archive is a File or Stdout"),
            };
            let reference = destination.reference().or(options.tags().first().map(String::as_str)).unwrap_or("");
            let mut name = std::ffi::OsString::from(format!("{transport}:"));
            name.push(path.as_os_str());
            name.push(format!(":{reference}"));
            (destination.clone(), Some(PathBuf::from(name)))
        }
        OutputChoice::Registry(_) => unreachable!("pushed above"),
    };
    let output = destination.output().expect("a file destination");
    // No file name after an archive written to standard output.
    let name = name.filter(|_| !is_standard_output(&output));
    check_descriptors(&output, name.is_some())?;
    if let Some(file) = &cli.closure_file {
        refuse_inputs(&output, &[Input { what: "closure file", path: file }], None)?;
    }
    let closure = match &cli.closure_file {
        Some(file) => Some(read_closure_file_cancellable(
            &StoreDir::new(options.store_dir())?,
            file,
            Some(&interrupts.cancel),
        )?),
        None => None,
    };
    let bar = (!cli.quiet && std::io::stderr().is_terminal()).then(|| Arc::new(ProgressBar::new()));
    if let Some(bar) = &bar {
        let bar = Arc::clone(bar);
        options.set_progress(Some(Arc::new(move |progress| bar.update(progress))));
    }
    let result = if cli.platforms.is_empty() {
        build_image(&cli.items, closure.as_deref(), &destination, &options)
    } else {
        build_platform_images(&cli.platform_items()?, &destination, &options)
    };
    if let Some(bar) = &bar {
        bar.finish(result.is_ok());
    }
    result.map(|()| name)
}

/// Pushes the image to a registry; prints `docker://HOST/REPOSITORY:TAG`
/// for each tag pushed (and, unless quiet, what went up on standard error).
fn push(
    cli: &Cli,
    interrupts: &Interrupts,
    mut options: guix_docker_native::ImageOptions,
    reference: guix_docker_native::RegistryReference,
) -> Result<Option<PathBuf>> {
    options.set_cancel(Some(Arc::clone(&interrupts.cancel)));
    if !cli::stdio::was_open_at_start(1) {
        return Err(Error::new(
            ErrorKind::Output,
            "standard output is closed: the references pushed are printed there (redirect it to /dev/null to discard them)",
        ));
    }
    let closure = match &cli.closure_file {
        Some(file) => Some(read_closure_file_cancellable(&StoreDir::new(options.store_dir())?, file, Some(&interrupts.cancel))?),
        None => None,
    };
    let last = Arc::new(std::sync::Mutex::new(PushReport::default()));
    let bars = (!cli.quiet && std::io::stderr().is_terminal()).then(|| Arc::new(PushBars::new()));
    {
        let (last, bars) = (Arc::clone(&last), bars.clone());
        options.set_push_progress(Some(Arc::new(move |report: &PushReport| {
            if let Some(bars) = &bars {
                bars.report(report);
            }
            *last.lock().unwrap() = report.clone();
        })));
    }
    if let Some(bars) = &bars {
        let bars = Arc::clone(bars);
        options.set_progress(Some(Arc::new(move |progress| bars.update(progress))));
    }
    let destination = Destination::Registry(reference.clone());
    let result = if cli.platforms.is_empty() {
        build_image(&cli.items, closure.as_deref(), &destination, &options)
    } else {
        build_platform_images(&cli.platform_items()?, &destination, &options)
    };
    if let Some(bars) = &bars {
        bars.finish(result.is_ok());
    }
    result?;
    let report = last.lock().unwrap().clone();
    let (digest, tags) = report.manifest.clone().expect("a push that succeeded has its manifest");
    if !cli.quiet {
        let count = |f: fn(&LayerState) -> bool| report.layers.iter().filter(|l| f(&l.state)).count();
        eprintln!(
            "{PROGRAM}: pushed {} ({} layers: {} uploaded, {} already there, {} mounted; config {}), manifest {digest}, tags {}",
            report.repository,
            report.layers.len(),
            count(|s| matches!(s, LayerState::Uploaded)),
            count(|s| matches!(s, LayerState::Skipped)),
            count(|s| matches!(s, LayerState::Mounted { .. })),
            if report.config_present == Some(true) { "already there" } else { "uploaded" },
            tags.join(", ")
        );
    }
    let names: Vec<String> = tags.iter().map(|t| format!("{}:{t}", report.repository)).collect();
    Ok(Some(PathBuf::from(names.join("\n"))))
}

/// Refuses an output on a descriptor that was closed when the program
/// started (the runtime put `/dev/null` there), and a closed standard
/// output when the file name is to be printed on it: both would otherwise
/// succeed silently.  An archive is not written to a terminal.
fn check_descriptors(output: &Output, prints_name: bool) -> Result<()> {
    let (shown, fd) = match output {
        Output::Stdout => ("-".to_string(), Some(1)),
        Output::Path(path) => (path.display().to_string(), descriptor_of(path)),
    };
    if let Some(fd) = fd.filter(|&fd| !cli::stdio::was_open_at_start(fd)) {
        let what = match fd {
            1 => "standard output is closed".to_string(),
            _ => format!("file descriptor {fd} is not open"),
        };
        return Err(Error::new(ErrorKind::Output, format!("output '{shown}': {what}")));
    }
    if fd == Some(1) && std::io::stdout().is_terminal() {
        return Err(Error::new(
            ErrorKind::Output,
            format!("output '{shown}': standard output is a terminal; redirect it (-o - | docker load) or give -o FILE"),
        ));
    }
    if prints_name && !cli::stdio::was_open_at_start(1) {
        return Err(Error::new(
            ErrorKind::Output,
            "standard output is closed: the archive's file name is printed there (redirect it to /dev/null to discard it)",
        ));
    }
    Ok(())
}

/// Prints `err` and returns the exit status: the error's result code, or
/// 128 plus the signal's number when a signal stopped the build.
fn report_error(err: &Error, interrupts: &Interrupts) -> i32 {
    match (err.kind, interrupts.received()) {
        (ErrorKind::Cancelled, Some(sig)) => {
            eprintln!("{PROGRAM}: error: interrupted by {}; no archive was written", signal_name(sig));
            128 + sig
        }
        _ => {
            eprintln!("{PROGRAM}: error: {}", err.message);
            err.kind.code()
        }
    }
}

/// Prints clap's message in our format; help and version go to standard
/// output with status 0.
fn report_usage_error(err: clap::Error) -> i32 {
    if !err.use_stderr() {
        let _ = err.print();
        return 0;
    }
    let text = err.render().to_string();
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    eprint!("{PROGRAM}: error: {text}");
    ErrorKind::InvalidArgument.code()
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic".to_string()
    }
}
