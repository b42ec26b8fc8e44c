//! gdn-sample-store: makes a small Guix-like store to build images from.
//!
//! ```text
//! gdn-sample-store [--force] [--use-busybox] DIR
//! ```
//!
//! creates `DIR/gnu/store` and the store database `DIR/var/guix/db/db.sqlite`
//! and prints the path of the main item, a profile, on standard output (and
//! nothing else).  The same `DIR` always gives the same store.  `--force`
//! deletes an existing `DIR/gnu/store` and `DIR/var/guix/db` first; without
//! it a non-empty `DIR/gnu/store` is an error.
//!
//! The store directory is `S = DIR/gnu/store` (use `--store-dir S` with the
//! image builder).  Hash parts are the Nix base32 of the first 20 bytes of
//! the sha256 of `gdn-sample-store:<name>`, so they do not depend on `DIR`;
//! file contents mention other items by their real paths under `S`.
//!
//! ```text
//! S/<hash>-profile                      the main item, printed on stdout
//!     bin -> S/<hash>-hello-2.12.1/bin        (absolute symlink)
//!     share -> S/<hash>-hello-2.12.1/share
//!     etc/profile                             mentions the profile itself
//!     manifest                                mentions hello
//! S/<hash>-hello-2.12.1
//!     bin/hello        statically linked (gcc -static), mode 0555; with
//!                      --use-busybox, or when gcc cannot link statically,
//!                      a script whose #! line names bin/busybox, a copy of
//!                      Debian's static /bin/busybox (hello then refers to
//!                      itself)
//!     bin/hi -> hello                          relative symlink in the item
//!     share/doc/hello/README                   mentions S/<hash>-glibc-sample-2.39
//!     share/doc/hello/COPYING                  hard link to glibc-sample's COPYING
//!     share/hello/greeting.txt -> S/<hash>-greeting-data-1.0/share/greeting/message.txt
//!     share/hello/empty/                       an empty directory
//!     share/hello/dangling -> no-such-file     a dangling symlink
//!     share/hello/<long dirs>/<long file>      a 100+ byte file name whose
//!                                              path in an image exceeds 200 bytes
//! S/<hash>-glibc-sample-2.39
//!     lib/libc.so.6                            mentions the item itself
//!     lib/ld-linux-x86-64.so.2 -> libc.so.6
//!     share/doc/glibc-sample/COPYING           same inode as hello's COPYING
//! S/<hash>-greeting-data-1.0                   referenced only by hello's symlink
//!     share/greeting/message.txt
//! S/<hash>-unrelated-0.1                       NOT in the profile's closure;
//!     share/unrelated.txt                      mentions glibc-sample
//! ```
//!
//! The profile's closure is profile, hello-2.12.1, glibc-sample-2.39 and
//! greeting-data-1.0.  `<profile>/bin/hello` (entry point `bin/hello`
//! relative to the profile) prints
//!
//! ```text
//! Hello from the guix-docker-native sample store!
//! argument 1: <first argument>            one line per argument, if any
//! GREETING=<value>                        if the variable GREETING is set
//! ```
//!
//! As in a real store, files have mode 0444 or 0555, directories 0555, and
//! everything has mtime 1 (second after the epoch).  The database uses
//! Guix's schema; `ValidPaths` lists every item with the sha256 and size of
//! its NAR serialisation and registration time 1, and `Refs` the references
//! listed above (self-references included, as the daemon records them).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::Parser;
use sha2::{Digest, Sha256};

use guix_docker_native::closure::STORE_DATABASE_SCHEMA;
use guix_docker_native::store::nix_base32_encode;

/// The first line `bin/hello` prints.
const HELLO_LINE: &str = "Hello from the guix-docker-native sample store!";

/// Where Debian's busybox-static installs busybox.
const BUSYBOX: &str = "/bin/busybox";

/// Makes a small Guix-like store in DIR and prints its main item.
#[derive(Parser)]
#[command(name = "gdn-sample-store")]
struct Args {
    /// Delete an existing DIR/gnu/store and DIR/var/guix/db first.
    #[arg(long)]
    force: bool,
    /// Make bin/hello a script run by a copy of /bin/busybox (busybox-static)
    /// instead of compiling it with gcc.
    #[arg(long)]
    use_busybox: bool,
    /// The directory to make the store in (created if missing).
    dir: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match generate(&args) {
        Ok(profile) => {
            println!("{}", profile.display());
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("gdn-sample-store: {message}");
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, String>;

/// What an I/O error on `path` means, for the user.
fn io_error(path: &Path, what: &str, err: std::io::Error) -> String {
    format!("{}: {what}: {err}", path.display())
}

const PROFILE: &str = "profile";
const HELLO: &str = "hello-2.12.1";
const GLIBC: &str = "glibc-sample-2.39";
const GREETING: &str = "greeting-data-1.0";
const UNRELATED: &str = "unrelated-0.1";

/// Every item, in no particular order.
const ITEMS: &[&str] = &[PROFILE, HELLO, GLIBC, GREETING, UNRELATED];

/// The names of the items the contents of item `name` mention, itself
/// included; `write_items` must write exactly these references (the
/// integration test compares the database with a scan of the files).
fn references(name: &str, use_busybox: bool) -> Vec<&'static str> {
    match name {
        PROFILE => vec![PROFILE, HELLO],
        // The busybox script's #! line names hello's own busybox.
        HELLO if use_busybox => vec![HELLO, GLIBC, GREETING],
        HELLO => vec![GLIBC, GREETING],
        GLIBC => vec![GLIBC],
        GREETING => vec![],
        UNRELATED => vec![GLIBC],
        _ => unreachable!("unknown sample item {name}"),
    }
}

/// The sample store being made.
struct Store {
    dir: PathBuf,
}

impl Store {
    /// The path of the item called `name`.
    fn item(&self, name: &str) -> PathBuf {
        let digest = Sha256::digest(format!("gdn-sample-store:{name}").as_bytes());
        self.dir.join(format!("{}-{name}", nix_base32_encode(&digest[..20])))
    }

    fn item_str(&self, name: &str) -> String {
        self.item(name).to_str().expect("checked UTF-8 store directory").to_string()
    }
}

fn generate(args: &Args) -> Result<PathBuf> {
    let root = std::path::absolute(&args.dir).map_err(|err| io_error(&args.dir, "cannot make absolute", err))?;
    if root.to_str().is_none() {
        return Err(format!("{}: not UTF-8; choose another directory", root.display()));
    }
    let store = Store { dir: root.join("gnu/store") };
    let db_dir = root.join("var/guix/db");
    prepare_directories(&store.dir, &db_dir, args.force)?;

    let used_busybox = write_items(&store, args.use_busybox)?;
    for name in ITEMS {
        normalise_tree(&store.item(name))?;
    }
    write_database(&store, &db_dir.join("db.sqlite"), used_busybox)?;
    Ok(store.item(PROFILE))
}

/// Makes sure `store_dir` is empty (deleting it with `force`) and that the
/// database directory holds no old database.
fn prepare_directories(store_dir: &Path, db_dir: &Path, force: bool) -> Result<()> {
    let has_entries = match fs::read_dir(store_dir) {
        Ok(mut entries) => entries.next().is_some(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => false,
        Err(err) => return Err(io_error(store_dir, "cannot list", err)),
    };
    if has_entries {
        if !force {
            return Err(format!(
                "{} exists and is not empty; pass --force to delete and regenerate it",
                store_dir.display()
            ));
        }
        remove_tree(store_dir)?;
    }
    if force && db_dir.exists() {
        remove_tree(db_dir)?;
    }
    for dir in [store_dir, db_dir] {
        fs::create_dir_all(dir).map_err(|err| io_error(dir, "cannot create", err))?;
    }
    for name in ["db.sqlite", "db.sqlite-wal", "db.sqlite-shm", "db.sqlite-journal"] {
        let file = db_dir.join(name);
        match fs::remove_file(&file) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(io_error(&file, "cannot delete the old database", err)),
        }
    }
    Ok(())
}

/// Deletes `path`, first making its read-only directories writable (store
/// directories are 0555, which stops an unprivileged user deleting in them).
fn remove_tree(path: &Path) -> Result<()> {
    let mut pending = vec![path.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let metadata = fs::symlink_metadata(&dir).map_err(|err| io_error(&dir, "cannot read", err))?;
        if !metadata.is_dir() {
            continue;
        }
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
            .map_err(|err| io_error(&dir, "cannot make writable", err))?;
        for entry in fs::read_dir(&dir).map_err(|err| io_error(&dir, "cannot list", err))? {
            pending.push(entry.map_err(|err| io_error(&dir, "cannot list", err))?.path());
        }
    }
    fs::remove_dir_all(path).map_err(|err| io_error(path, "cannot delete", err))
}

/// Writes the files of every item in [`ITEMS`].  Returns whether bin/hello
/// is a busybox script.
fn write_items(store: &Store, use_busybox: bool) -> Result<bool> {
    let profile = store.item(PROFILE);
    let hello = store.item(HELLO);
    let glibc = store.item(GLIBC);
    let greeting = store.item(GREETING);
    let unrelated = store.item(UNRELATED);

    // glibc-sample: refers to itself, as real libraries do.
    write_file(
        &glibc.join("lib/libc.so.6"),
        format!(
            "\x7fSAMPLE: not a real C library; a stand-in with a store reference.\n\
             Configured with --prefix={}\n",
            store.item_str(GLIBC)
        )
        .as_bytes(),
        true,
    )?;
    write_symlink("libc.so.6", &glibc.join("lib/ld-linux-x86-64.so.2"))?;
    let copying = glibc.join("share/doc/glibc-sample/COPYING");
    write_file(
        &copying,
        b"This file is shared by two items of the sample store: the store\n\
          deduplicates identical files by hard-linking them.\n",
        false,
    )?;

    // greeting-data: reached only through hello's symlink.
    write_file(
        &greeting.join("share/greeting/message.txt"),
        b"Greetings from the greeting-data item.\n",
        false,
    )?;

    // hello.
    let used_busybox = write_hello(&hello, use_busybox)?;
    write_symlink("hello", &hello.join("bin/hi"))?;
    write_file(
        &hello.join("share/doc/hello/README"),
        format!(
            "The sample store's hello program.\n\
             It was built against the C library in {}/lib.\n",
            store.item_str(GLIBC)
        )
        .as_bytes(),
        false,
    )?;
    let shared = hello.join("share/doc/hello/COPYING");
    fs::hard_link(&copying, &shared).map_err(|err| io_error(&shared, "cannot hard-link", err))?;
    write_symlink(greeting.join("share/greeting/message.txt"), &hello.join("share/hello/greeting.txt"))?;
    let empty = hello.join("share/hello/empty");
    fs::create_dir_all(&empty).map_err(|err| io_error(&empty, "cannot create", err))?;
    write_symlink("no-such-file", &hello.join("share/hello/dangling"))?;
    let long_name = hello.join(long_relative_path());
    write_file(&long_name, b"A file whose name does not fit in a ustar header.\n", false)?;

    // profile: refers to itself (etc/profile) and to hello.
    write_symlink(hello.join("bin"), &profile.join("bin"))?;
    write_symlink(hello.join("share"), &profile.join("share"))?;
    write_file(
        &profile.join("etc/profile"),
        format!(
            "# Source this file to use the profile.\n\
             export PATH=\"{}/bin${{PATH:+:}}$PATH\"\n",
            store.item_str(PROFILE)
        )
        .as_bytes(),
        false,
    )?;
    write_file(
        &profile.join("manifest"),
        format!(
            "(manifest\n  (version 4)\n  (packages\n    ((\"hello\" \"2.12.1\" \"out\" \"{}\"\n      (propagated-inputs ())))))\n",
            store.item_str(HELLO)
        )
        .as_bytes(),
        false,
    )?;

    // unrelated: refers to a closure member, but nothing refers to it.
    write_file(
        &unrelated.join("share/unrelated.txt"),
        format!("Not in the profile's closure; mentions {}.\n", store.item_str(GLIBC)).as_bytes(),
        false,
    )?;
    Ok(used_busybox)
}

/// A path inside hello whose last component exceeds the 100 bytes of a
/// ustar name field, and which with the item's path in an image exceeds
/// the 155 + 100 bytes a ustar prefix and name can hold together.
fn long_relative_path() -> PathBuf {
    let dirs = [
        "share/hello",
        "a-directory-with-a-rather-long-name-to-make-archive-paths-long",
        "another-directory-with-a-long-name-inside-the-first-one",
    ];
    let file = "a-file-whose-name-alone-is-longer-than-the-one-hundred-bytes-that-the-name-field-of-a-ustar-header-can-hold.txt";
    assert!(file.len() > 100);
    let path: PathBuf = dirs.iter().chain([&file]).collect();
    assert!(path.as_os_str().len() > 200);
    path
}

/// Writes bin/hello: a static executable compiled with gcc or, failing
/// that (or with `use_busybox`), a busybox script.  Returns whether it
/// is the busybox script.
fn write_hello(hello: &Path, use_busybox: bool) -> Result<bool> {
    let bin = hello.join("bin");
    fs::create_dir_all(&bin).map_err(|err| io_error(&bin, "cannot create", err))?;
    let program = bin.join("hello");
    if !use_busybox {
        let problem = match compile_hello(&program) {
            Ok(()) => return Ok(false),
            Err(CompileError::NoCompiler) => "gcc is not installed".to_string(),
            Err(CompileError::Failed(message)) => message,
        };
        if !Path::new(BUSYBOX).exists() {
            return Err(format!(
                "cannot make a static bin/hello: {problem}; and {BUSYBOX} does not exist either \
                 (install gcc and the static C library, libc6-dev, or Debian's busybox-static)"
            ));
        }
        eprintln!("gdn-sample-store: {problem}; using {BUSYBOX} instead");
    }
    let busybox = bin.join("busybox");
    if !is_static_executable(Path::new(BUSYBOX))? {
        return Err(format!("{BUSYBOX} is not statically linked; install Debian's busybox-static"));
    }
    fs::copy(BUSYBOX, &busybox).map_err(|err| io_error(&busybox, &format!("cannot copy {BUSYBOX} to"), err))?;
    // The kernel reads at most 127 bytes of a #! line on older kernels.
    let interpreter = format!("#!{} sh", busybox.display());
    if interpreter.len() > 127 {
        return Err(format!("{}: path too long for a #! line; choose a shorter DIR", busybox.display()));
    }
    let script = format!(
        "{interpreter}\n\
         echo '{HELLO_LINE}'\n\
         i=0\n\
         for argument in \"$@\"; do i=$((i + 1)); echo \"argument $i: $argument\"; done\n\
         if [ -n \"${{GREETING+set}}\" ]; then echo \"GREETING=$GREETING\"; fi\n"
    );
    write_file(&program, script.as_bytes(), true)?;
    Ok(true)
}

enum CompileError {
    NoCompiler,
    Failed(String),
}

/// Compiles the hello program, statically linked, to `output`.
fn compile_hello(output: &Path) -> std::result::Result<(), CompileError> {
    let source = format!(
        r#"#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{{
  puts("{HELLO_LINE}");
  for (int i = 1; i < argc; i++)
    printf("argument %d: %s\n", i, argv[i]);
  const char *greeting = getenv("GREETING");
  if (greeting != NULL)
    printf("GREETING=%s\n", greeting);
  return 0;
}}
"#
    );
    let failed = |message: String| CompileError::Failed(message);
    let work = tempfile::tempdir().map_err(|err| failed(format!("cannot make a temporary directory: {err}")))?;
    let c_file = work.path().join("hello.c");
    fs::write(&c_file, source).map_err(|err| failed(io_error(&c_file, "cannot write", err)))?;
    let compiled = work.path().join("hello");
    let run = Command::new("gcc")
        .args(["-static", "-O2", "-s", "-o"])
        .arg(&compiled)
        .arg(&c_file)
        .current_dir(work.path())
        .env("LC_ALL", "C")
        .output();
    let run = match run {
        Ok(run) => run,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Err(CompileError::NoCompiler),
        Err(err) => return Err(failed(format!("cannot run gcc: {err}"))),
    };
    if !run.status.success() {
        return Err(failed(format!(
            "gcc -static failed ({}); is the static C library (libc6-dev) installed?\n{}",
            run.status,
            String::from_utf8_lossy(&run.stderr)
        )));
    }
    if !is_static_executable(&compiled).map_err(failed)? {
        return Err(failed("gcc -static produced a dynamically linked program".to_string()));
    }
    fs::copy(&compiled, output).map_err(|err| failed(io_error(output, "cannot write", err)))?;
    Ok(())
}

/// Is `path` a 64-bit little-endian ELF executable without a program
/// interpreter (a PT_INTERP program header), i.e. statically linked?
fn is_static_executable(path: &Path) -> Result<bool> {
    let data = fs::read(path).map_err(|err| io_error(path, "cannot read", err))?;
    let u16_at = |at: usize| data.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u32_at = |at: usize| data.get(at..at + 4).map(|b| u32::from_le_bytes(b.try_into().unwrap()));
    let u64_at = |at: usize| data.get(at..at + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap()) as usize);
    const ELFCLASS64: u8 = 2;
    const ELFDATA2LSB: u8 = 1;
    const PT_INTERP: u32 = 3;
    if !data.starts_with(b"\x7fELF") || data.get(4) != Some(&ELFCLASS64) || data.get(5) != Some(&ELFDATA2LSB) {
        return Err(format!("{}: not a 64-bit little-endian ELF file", path.display()));
    }
    let malformed = || format!("{}: malformed ELF file", path.display());
    let (offset, size, count) = match (u64_at(0x20), u16_at(0x36), u16_at(0x38)) {
        (Some(offset), Some(size), Some(count)) => (offset, size, count),
        _ => return Err(malformed()),
    };
    for index in 0..count {
        match u32_at(offset + index * size) {
            Some(PT_INTERP) => return Ok(false),
            Some(_) => {}
            None => return Err(malformed()),
        }
    }
    Ok(true)
}

/// Writes `contents` to `path`, creating its parents.
fn write_file(path: &Path, contents: &[u8], executable: bool) -> Result<()> {
    let parent = path.parent().expect("a file in an item");
    fs::create_dir_all(parent).map_err(|err| io_error(parent, "cannot create", err))?;
    fs::write(path, contents).map_err(|err| io_error(path, "cannot write", err))?;
    let mode = if executable { 0o555 } else { 0o444 };
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|err| io_error(path, "cannot chmod", err))
}

/// Makes the symlink `link` pointing to `target`, creating its parents.
fn write_symlink(target: impl AsRef<Path>, link: &Path) -> Result<()> {
    let parent = link.parent().expect("a symlink in an item");
    fs::create_dir_all(parent).map_err(|err| io_error(parent, "cannot create", err))?;
    std::os::unix::fs::symlink(target, link).map_err(|err| io_error(link, "cannot make symlink", err))
}

/// Gives `root` and everything in it the store's modes (directories 0555,
/// files 0444 or 0555) and mtime 1, whatever the umask.  Children first:
/// a directory's mtime must be set after its entries are changed.
fn normalise_tree(root: &Path) -> Result<()> {
    let metadata = fs::symlink_metadata(root).map_err(|err| io_error(root, "cannot read", err))?;
    if metadata.is_dir() {
        for entry in fs::read_dir(root).map_err(|err| io_error(root, "cannot list", err))? {
            normalise_tree(&entry.map_err(|err| io_error(root, "cannot list", err))?.path())?;
        }
    }
    let mode = if metadata.is_dir() || metadata.mode() & 0o111 != 0 { 0o555 } else { 0o444 };
    if !metadata.file_type().is_symlink() {
        fs::set_permissions(root, fs::Permissions::from_mode(mode)).map_err(|err| io_error(root, "cannot chmod", err))?;
    }
    set_mtime_one(root)
}

/// Sets the mtime (and atime) of `path` to 1, not following a symlink.
fn set_mtime_one(path: &Path) -> Result<()> {
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| format!("{}: NUL in path", path.display()))?;
    let times = [libc::timespec { tv_sec: 1, tv_nsec: 0 }, libc::timespec { tv_sec: 1, tv_nsec: 0 }];
    // SAFETY: c_path is a NUL-terminated string and times holds two timespecs.
    let status = unsafe { libc::utimensat(libc::AT_FDCWD, c_path.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
    if status != 0 {
        return Err(io_error(path, "cannot set the mtime", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Writes the store database: every item with its NAR hash and size, and
/// their [`references`].
fn write_database(store: &Store, file: &Path, use_busybox: bool) -> Result<()> {
    let db_error = |err: rusqlite::Error| format!("{}: {err}", file.display());
    let mut connection = rusqlite::Connection::open(file).map_err(db_error)?;
    connection.execute_batch(STORE_DATABASE_SCHEMA).map_err(db_error)?;
    let transaction = connection.transaction().map_err(db_error)?;
    // Registered in path order, so the ids do not depend on ITEMS' order.
    let by_path: BTreeMap<PathBuf, &str> = ITEMS.iter().map(|name| (store.item(name), *name)).collect();
    for path in by_path.keys() {
        let (hash, size) = nar_hash_and_size(path)?;
        transaction
            .execute(
                "INSERT INTO ValidPaths (path, hash, registrationTime, deriver, narSize) VALUES (?1, ?2, 1, NULL, ?3)",
                rusqlite::params![path.to_str(), format!("sha256:{hash}"), size as i64],
            )
            .map_err(db_error)?;
    }
    for (path, name) in &by_path {
        for reference in references(name, use_busybox) {
            transaction
                .execute(
                    "INSERT INTO Refs (referrer, reference) \
                     SELECT a.id, b.id FROM ValidPaths a, ValidPaths b WHERE a.path = ?1 AND b.path = ?2",
                    [path.to_str(), store.item(reference).to_str()],
                )
                .map_err(db_error)?;
        }
    }
    transaction.commit().map_err(db_error)
}

/// The sha256 (in hex) and the size of the NAR serialisation of `path`,
/// as the daemon records them.
fn nar_hash_and_size(path: &Path) -> Result<(String, u64)> {
    let mut nar = NarWriter { hasher: Sha256::new(), size: 0 };
    nar.string(b"nix-archive-1");
    nar.node(path)?;
    Ok((hex::encode(nar.hasher.finalize()), nar.size))
}

/// Writes the NAR format into a hash: strings as a little-endian 64-bit
/// length and the bytes padded with zeros to a multiple of 8; a node is
/// `( type regular [executable ""] contents <data> )`, `( type symlink
/// target <target> )` or `( type directory entry ( name <n> node <node> )
/// ... )` with entries sorted by name.
struct NarWriter {
    hasher: Sha256,
    size: u64,
}

impl NarWriter {
    fn raw(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
    }

    fn string(&mut self, bytes: &[u8]) {
        self.raw(&(bytes.len() as u64).to_le_bytes());
        self.raw(bytes);
        let padding = (8 - bytes.len() % 8) % 8;
        self.raw(&[0; 8][..padding]);
    }

    fn node(&mut self, path: &Path) -> Result<()> {
        let metadata = fs::symlink_metadata(path).map_err(|err| io_error(path, "cannot read", err))?;
        self.string(b"(");
        self.string(b"type");
        if metadata.file_type().is_symlink() {
            let target = fs::read_link(path).map_err(|err| io_error(path, "cannot read", err))?;
            self.string(b"symlink");
            self.string(b"target");
            self.string(target.as_os_str().as_bytes());
        } else if metadata.is_file() {
            self.string(b"regular");
            if metadata.mode() & 0o111 != 0 {
                self.string(b"executable");
                self.string(b"");
            }
            self.string(b"contents");
            let contents = fs::read(path).map_err(|err| io_error(path, "cannot read", err))?;
            self.string(&contents);
        } else {
            self.string(b"directory");
            let mut names = Vec::new();
            for entry in fs::read_dir(path).map_err(|err| io_error(path, "cannot list", err))? {
                names.push(entry.map_err(|err| io_error(path, "cannot list", err))?.file_name());
            }
            names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            for name in names {
                self.string(b"entry");
                self.string(b"(");
                self.string(b"name");
                self.string(name.as_bytes());
                self.string(b"node");
                self.node(&path.join(&name))?;
                self.string(b")");
            }
        }
        self.string(b")");
        Ok(())
    }
}
