//! What each kind of output path means, through the `guix-docker-native`
//! program: symlinks, devices, FIFOs, descriptors, directories, inputs of
//! the build, long names, modes, a killed build, a closed standard output.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{symlink, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_guix-docker-native");
const HASH_A: &str = "0a1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r";
const HASH_B: &str = "1zyxwvsrqpnmlkjihgfdcba987654321";

struct Store {
    dir: tempfile::TempDir,
    store: PathBuf,
    item: PathBuf,
}

fn make_store(big: usize) -> Store {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("gnu/store");
    let item = store.join(format!("{HASH_A}-app-1.0"));
    let data = store.join(format!("{HASH_B}-data"));
    fs::create_dir_all(item.join("bin")).unwrap();
    fs::write(item.join("bin/app"), "#!/bin/sh\necho app\n").unwrap();
    fs::set_permissions(item.join("bin/app"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(item.join("big"), vec![7u8; big]).unwrap();
    symlink(&data, item.join("data")).unwrap();
    fs::write(&data, "data\n").unwrap();
    Store { dir, store, item }
}

impl Store {
    fn out(&self) -> PathBuf {
        let out = self.dir.path().join("out");
        fs::create_dir_all(&out).unwrap();
        out
    }

    /// The command, with the store and the item; `args` come first.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--store-dir").arg(&self.store).arg("-q").args(args).arg(&self.item);
        c.stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// The archive written to a plain file, to compare with.
    fn reference(&self) -> Vec<u8> {
        let path = self.dir.path().join("reference.tar");
        let r = self.run(&["-o", path.to_str().unwrap()]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        let bytes = fs::read(&path).unwrap();
        fs::remove_file(&path).unwrap();
        bytes
    }
}

fn stderr(r: &Output) -> String {
    String::from_utf8_lossy(&r.stderr).into_owned()
}

/// Fails unless `r` exited with 7 and a message containing every `says`.
fn refused(r: &Output, says: &[&str]) {
    let err = stderr(r);
    assert_eq!(r.status.code(), Some(7), "{err}");
    assert!(err.starts_with("guix-docker-native: error: "), "{err}");
    for s in says {
        assert!(err.contains(s), "{err:?} does not say {s:?}");
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    v.sort();
    v
}

/// Whether `bytes` are an image archive: a tar with manifest.json.
fn is_archive(bytes: &[u8]) -> bool {
    tar::Archive::new(bytes).entries().unwrap().any(|e| e.unwrap().path().unwrap() == Path::new("manifest.json"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Waits for `child` at most `limit`; kills it and fails after that.
fn wait_bounded(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            panic!("still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

fn mkfifo(path: &Path) {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
}

#[test]
fn a_symlink_to_a_regular_file_writes_its_target() {
    let st = make_store(1000);
    let out = st.out();
    fs::create_dir(out.join("real")).unwrap();
    fs::write(out.join("real/image.tar"), "old").unwrap();
    symlink("real/image.tar", out.join("link.tar")).unwrap();
    let r = st.run(&["-o", s(&out.join("link.tar"))]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert_eq!(String::from_utf8_lossy(&r.stdout), format!("{}\n", out.join("link.tar").display()));
    assert_eq!(fs::read_link(out.join("link.tar")).unwrap(), Path::new("real/image.tar"));
    assert!(fs::read(out.join("real/image.tar")).unwrap() == st.reference());
    assert_eq!(names(&out), ["link.tar", "real"]);
    assert_eq!(names(&out.join("real")), ["image.tar"]);
}

#[test]
fn a_symlink_to_a_character_device_writes_the_device() {
    let st = make_store(1000);
    let out = st.out();
    let link = out.join("stdout-like");
    symlink("/dev/null", &link).unwrap();
    let r = st.run(&["-o", s(&link)]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert_eq!(fs::read_link(&link).unwrap(), Path::new("/dev/null"));
    assert!(fs::metadata("/dev/null").unwrap().file_type().is_char_device());
    assert_eq!(names(&out), ["stdout-like"]);
    // A device that refuses the bytes: an error, not a success.
    let r = st.run(&["-o", "/dev/full"]);
    refused(&r, &["/dev/full", "No space left"]);
}

#[test]
fn dev_stdout_is_standard_output_written_in_place() {
    let st = make_store(1000);
    let out = st.out();
    let was_symlink = fs::symlink_metadata("/dev/stdout").map(|m| m.file_type().is_symlink()).unwrap_or(false);
    let file = out.join("captured");
    let mut c = st.command(&["-o", "/dev/stdout"]);
    c.stdout(fs::File::create(&file).unwrap());
    let r = c.output().unwrap();
    assert!(r.status.success(), "{}", stderr(&r));
    // The archive, and no file name after it.
    assert!(fs::read(&file).unwrap() == st.reference());
    if was_symlink {
        assert!(fs::symlink_metadata("/dev/stdout").unwrap().file_type().is_symlink(), "/dev/stdout was replaced");
    }
    // /dev/fd/N: that descriptor, at its position (here after what is there).
    let script = format!("printf before > {f}; exec \"$0\" \"$@\" 3>>{f}", f = s(&file));
    let r = Command::new("sh")
        .args(["-c", &script, BIN, "--store-dir", s(&st.store), "-q", "-o", "/dev/fd/3", s(&st.item)])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", stderr(&r));
    let bytes = fs::read(&file).unwrap();
    assert!(bytes.starts_with(b"before") && bytes[6..] == st.reference()[..]);
    // On a terminal, as -o -: refused.
    if Command::new("script").arg("--version").output().is_ok_and(|r| r.status.success()) {
        let typescript = st.dir.path().join("typescript");
        let command = format!("{BIN} --store-dir {} -o /dev/stdout {}", s(&st.store), s(&st.item));
        let r = Command::new("script").args(["-qec", &command]).arg(&typescript).stdin(Stdio::null()).output().unwrap();
        assert_eq!(r.status.code(), Some(7));
        let shown = fs::read_to_string(&typescript).unwrap();
        assert!(shown.contains("output '/dev/stdout': standard output is a terminal"), "{shown}");
    }
    // A descriptor that is not open.
    let r = st.run(&["-o", "/dev/fd/9"]);
    refused(&r, &["output '/dev/fd/9': file descriptor 9 is not open"]);
    assert_eq!(names(&out), ["captured"]);
}

#[test]
fn a_fifo_with_a_reader_gets_the_archive() {
    let st = make_store(3 << 20);
    let out = st.out();
    let fifo = out.join("fifo");
    mkfifo(&fifo);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut data = Vec::new();
            fs::File::open(fifo).unwrap().read_to_end(&mut data).unwrap();
            data
        })
    };
    // The reader opens the FIFO when it runs: retry while it has not yet.
    let start = Instant::now();
    loop {
        let r = st.run(&["-o", s(&fifo)]);
        if r.status.success() {
            break;
        }
        assert!(stderr(&r).contains("no reader") && start.elapsed() < Duration::from_secs(20), "{}", stderr(&r));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(reader.join().unwrap() == st.reference());
    assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo());
    assert_eq!(names(&out), ["fifo"]);
}

#[test]
fn a_fifo_without_a_reader_is_an_error_not_a_hang() {
    let st = make_store(1000);
    let out = st.out();
    let fifo = out.join("fifo");
    mkfifo(&fifo);
    let child = st.command(&["-o", s(&fifo)]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let r = wait_bounded(child, Duration::from_secs(30));
    refused(&r, &[&format!("output '{}'", fifo.display()), "FIFO with no reader"]);
    assert!(fs::metadata(&fifo).unwrap().file_type().is_fifo());
    assert_eq!(names(&out), ["fifo"]);
}

#[test]
fn a_directory_and_a_socket_are_refused() {
    let st = make_store(1000);
    let out = st.out();
    fs::create_dir(out.join("image.tar")).unwrap();
    let r = st.run(&["-o", s(&out.join("image.tar"))]);
    refused(&r, &[s(&out.join("image.tar")), "is a directory"]);
    assert!(names(&out.join("image.tar")).is_empty());
    let _socket = std::os::unix::net::UnixListener::bind(out.join("socket")).unwrap();
    symlink("socket", out.join("to-socket")).unwrap();
    let r = st.run(&["-o", s(&out.join("socket"))]);
    refused(&r, &["socket'", "is a socket"]);
    let r = st.run(&["-o", s(&out.join("to-socket"))]);
    refused(&r, &["to-socket'", "is a symlink to 'socket', which is a socket"]);
    assert_eq!(names(&out), ["image.tar", "socket", "to-socket"]);
}

#[test]
fn an_output_that_is_an_input_is_refused_before_anything_is_written() {
    let st = make_store(1000);
    let out = st.out();
    // The database: refused before it is read, so any bytes will do.
    let db = out.join("db.sqlite");
    fs::write(&db, "not touched").unwrap();
    let r = st.run(&["--database", s(&db), "-o", s(&db)]);
    refused(&r, &[&format!("output '{}' is the store database '{}'", db.display(), db.display())]);
    assert_eq!(fs::read(&db).unwrap(), b"not touched");
    // The closure file, also through a symlink.
    let closure = out.join("closure.txt");
    let list = format!("{}\n{}\n", st.item.display(), st.store.join(format!("{HASH_B}-data")).display());
    fs::write(&closure, &list).unwrap();
    symlink("closure.txt", out.join("closure-link")).unwrap();
    for output in [closure.clone(), out.join("closure-link")] {
        let r = st.run(&["--closure-file", s(&closure), "-o", s(&output)]);
        refused(&r, &[&format!("output '{}' is the closure file '{}'", output.display(), closure.display())]);
        assert_eq!(fs::read_to_string(&closure).unwrap(), list);
    }
    // A file copied into the image.
    let extra = out.join("app.conf");
    fs::write(&extra, "conf").unwrap();
    let r = st.run(&["--file", &format!("/etc/app.conf={}", extra.display()), "-o", s(&extra)]);
    refused(&r, &[&format!("output '{}' is the extra file '{}'", extra.display(), extra.display())]);
    assert_eq!(fs::read_to_string(&extra).unwrap(), "conf");
    // Inside the store: in an item, over a file of an item, in the store.
    let app = st.item.join("bin/app");
    for output in [st.item.join("image.tar"), app.clone(), st.store.join("image.tar")] {
        let r = st.run(&["-o", s(&output)]);
        refused(&r, &[&format!("output '{}' is inside the store directory '{}'", output.display(), st.store.display())]);
    }
    assert_eq!(fs::read_to_string(&app).unwrap(), "#!/bin/sh\necho app\n");
    assert_eq!(names(&st.store), [format!("{HASH_A}-app-1.0"), format!("{HASH_B}-data")]);
    assert_eq!(names(&st.item), ["big", "bin", "data"]);
    // The default name, from a current directory inside the store.
    let r = st.command(&[]).current_dir(&st.item).output().unwrap();
    refused(&r, &["output 'app-1.0-docker-image.tar' is inside the store directory"]);
    assert_eq!(names(&st.item), ["big", "bin", "data"]);
    assert_eq!(names(&out), ["app.conf", "closure-link", "closure.txt", "db.sqlite"]);
}

#[test]
fn a_name_of_255_bytes_is_written() {
    let st = make_store(1000);
    let out = st.out();
    let name = format!("{}.tar", "n".repeat(251));
    let path = out.join(&name);
    for _ in 0..2 {
        let r = st.run(&["-o", s(&path)]);
        assert!(r.status.success(), "{}", stderr(&r));
        assert!(is_archive(&fs::read(&path).unwrap()));
    }
    assert_eq!(names(&out), [name]);
}

#[test]
fn an_overwritten_file_keeps_its_mode_and_a_new_one_follows_the_umask() {
    let st = make_store(1000);
    let out = st.out();
    let path = out.join("image.tar");
    let r = Command::new("sh")
        .args(["-c", "umask 027; exec \"$0\" \"$@\"", BIN, "--store-dir", s(&st.store), "-q", "-o", s(&path), s(&st.item)])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", stderr(&r));
    assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o7777, 0o640);
    for kept in [0o600, 0o664] {
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(kept)).unwrap();
        let r = st.run(&["-o", s(&path)]);
        assert!(r.status.success(), "{}", stderr(&r));
        assert!(is_archive(&fs::read(&path).unwrap()));
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o7777, kept);
    }
    assert_eq!(names(&out), ["image.tar"]);
}

/// Whether process `pid` has a file open in `dir` (its temporary file).
fn has_file_open_in(pid: u32, dir: &Path) -> bool {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
    fds.flatten().any(|fd| fs::read_link(fd.path()).is_ok_and(|target| target.starts_with(dir) && target != dir))
}

/// The tag of this boot and pid namespace in temporary names
/// (`.gdn-tmp-<tag>-<pid>-<random>`, README "Output paths").
fn host_tag() -> String {
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::MetadataExt;
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let ns = fs::metadata("/proc/self/ns/pid").unwrap();
    hex::encode(&Sha256::digest(format!("{}:{}:{}", boot.trim(), ns.dev(), ns.ino()))[..4])
}

#[test]
fn a_build_killed_mid_way_leaves_nothing_and_stale_files_are_removed() {
    let st = make_store(64 << 20);
    let out = st.out();
    let path = out.join("image.tar");
    let mut caught = false;
    for _ in 0..5 {
        let mut child = st.command(&["--threads", "1", "-o", s(&path)]).stdout(Stdio::null()).spawn().unwrap();
        let start = Instant::now();
        while !has_file_open_in(child.id(), &out) && child.try_wait().unwrap().is_none() {
            assert!(start.elapsed() < Duration::from_secs(60));
            std::thread::sleep(Duration::from_micros(200));
        }
        caught = child.try_wait().unwrap().is_none();
        child.kill().unwrap();
        child.wait().unwrap();
        if caught {
            break;
        }
        fs::remove_file(&path).unwrap();
    }
    assert!(caught, "never caught the build while it was writing");
    assert!(names(&out).is_empty(), "{:?}", names(&out));

    // Temporary files a killed build may leave (where the file system has
    // no O_TMPFILE): a later build removes those of dead processes of this
    // machine, and any not touched for a day; it keeps the others.
    let dead = {
        let mut c = Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    };
    let tag = host_tag();
    let other = if tag == "00000000" { "11111111" } else { "00000000" };
    let dead_here = format!(".gdn-tmp-{tag}-{dead}-0123456789abcdef");
    let live_here = format!(".gdn-tmp-{tag}-{}-0123456789abcdef", std::process::id());
    let elsewhere = format!(".gdn-tmp-{other}-{dead}-0123456789abcdef");
    let elsewhere_old = format!(".gdn-tmp-{other}-{dead}-fedcba9876543210");
    for name in [&dead_here, &live_here, &elsewhere, &elsewhere_old] {
        fs::write(out.join(name), "left over").unwrap();
    }
    let old = std::time::SystemTime::now() - Duration::from_secs(2 * 24 * 3600);
    fs::File::options().write(true).open(out.join(&elsewhere_old)).unwrap().set_modified(old).unwrap();
    let st_small = make_store(1000);
    let r = st_small.run(&["-o", s(&path)]);
    assert!(r.status.success(), "{}", stderr(&r));
    let mut expected = vec![live_here, elsewhere, "image.tar".to_string()];
    expected.sort();
    assert_eq!(names(&out), expected);
}

/// Runs the command through sh with standard output closed.
fn with_stdout_closed(st: &Store, args: &[&str], dir: &Path) -> Output {
    let mut c = Command::new("sh");
    c.args(["-c", "exec \"$0\" \"$@\" >&-", BIN, "--store-dir", s(&st.store), "-q"]).args(args).arg(&st.item);
    c.current_dir(dir).stdin(Stdio::null()).output().unwrap()
}

#[test]
fn a_closed_standard_output_is_an_error() {
    let st = make_store(1000);
    let out = st.out();
    let r = with_stdout_closed(&st, &["-o", "-"], &out);
    refused(&r, &["output '-': standard output is closed"]);
    let r = with_stdout_closed(&st, &["-o", "/dev/stdout"], &out);
    refused(&r, &["output '/dev/stdout': standard output is closed"]);
    // The file name is printed on standard output: refused before writing.
    let r = with_stdout_closed(&st, &[], &out);
    refused(&r, &["standard output is closed", "file name"]);
    let r = with_stdout_closed(&st, &["-o", "image.tar"], &out);
    refused(&r, &["standard output is closed"]);
    assert!(names(&out).is_empty());
    // Redirected to /dev/null, it is open: the build succeeds.
    let r = st.command(&["-o", s(&out.join("image.tar"))]).stdout(Stdio::null()).output().unwrap();
    assert!(r.status.success(), "{}", stderr(&r));
    fs::remove_file(out.join("image.tar")).unwrap();
}

#[test]
fn a_pipe_whose_reader_is_gone_is_an_error() {
    let st = make_store(3 << 20);
    let out = st.out();
    // -o -: EPIPE while streaming.
    let (mut reader, writer) = std::io::pipe().unwrap();
    let mut c = st.command(&["-o", "-"]);
    c.stdout(writer).stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    drop(c);
    // Read a little, then close the reading end.
    let mut first = [0u8; 512];
    reader.read_exact(&mut first).unwrap();
    drop(reader);
    let r = wait_bounded(child, Duration::from_secs(60));
    refused(&r, &["standard output", "Broken pipe"]);

    // The file name on a pipe already closed: the archive is written, and
    // the failure to print its name is reported.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let path = out.join("image.tar");
    let mut c = st.command(&["-o", s(&path)]);
    c.stdout(writer).stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    drop(c);
    let r = wait_bounded(child, Duration::from_secs(60));
    refused(&r, &[&format!("the archive was written to '{}', but its name could not be printed", path.display()), "Broken pipe"]);
    assert!(is_archive(&fs::read(&path).unwrap()));
}

/// `-o - | sleep 1000`: a reader that stops reading holds the build only
/// until a signal: SIGINT ends it at once (exit 130), where a blocking
/// write would have ignored it.
#[test]
fn a_reader_that_stops_reading_does_not_hold_the_build_past_a_signal() {
    let st = make_store(3 << 20);
    let (reader, writer) = std::io::pipe().unwrap();
    let mut c = st.command(&["-o", "-"]);
    c.stdout(writer).stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    drop(c);
    // The pipe fills (3 MiB against its 64 KiB), and nobody reads it.
    std::thread::sleep(Duration::from_millis(1500));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let r = wait_bounded(child, Duration::from_secs(10));
    drop(reader);
    assert_eq!(r.status.code(), Some(130), "{}", stderr(&r));
    assert!(stderr(&r).contains("interrupted by SIGINT"), "{}", stderr(&r));
}

/// Through a pipe that is read, the archive is the one a file gets.
#[test]
fn a_pipe_that_is_read_gets_the_whole_archive() {
    let st = make_store(3 << 20);
    let (mut reader, writer) = std::io::pipe().unwrap();
    let mut c = st.command(&["-o", "-"]);
    c.stdout(writer).stderr(Stdio::piped());
    let child = c.spawn().unwrap();
    drop(c);
    let mut bytes = Vec::new();
    // Read slowly at first, so the writer meets a full pipe.
    let mut piece = [0u8; 4096];
    for _ in 0..50 {
        let n = reader.read(&mut piece).unwrap();
        bytes.extend_from_slice(&piece[..n]);
        std::thread::sleep(Duration::from_millis(5));
    }
    reader.read_to_end(&mut bytes).unwrap();
    let r = wait_bounded(child, Duration::from_secs(60));
    assert!(r.status.success(), "{}", stderr(&r));
    assert_eq!(bytes, st.reference());
}
