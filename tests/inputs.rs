//! The inputs that are not store items, through the command line: the
//! closure file and the store database.  Nothing may make the program wait
//! forever, and what is wrong with them is said in the user's terms.
//! The stores are made by gdn-scale-store (tiny items with references).

use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PROGRAM: &str = env!("CARGO_BIN_EXE_guix-docker-native");
const GENERATOR: &str = env!("CARGO_BIN_EXE_gdn-scale-store");

/// A store of `items` tiny items and a profile referring to all of them.
struct Store {
    dir: tempfile::TempDir,
    store: PathBuf,
    database: PathBuf,
    profile: PathBuf,
}

fn make_store(items: u32) -> Store {
    let dir = tempfile::tempdir().unwrap();
    // Readable by every user: one test runs the program as another user.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new(GENERATOR).arg("--items").arg(items.to_string()).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let line = String::from_utf8(out.stdout).unwrap();
    let (count, profile) = line.trim_end().split_once(' ').unwrap();
    assert_eq!(count, items.to_string());
    Store {
        store: dir.path().join("gnu/store"),
        database: dir.path().join("var/guix/db/db.sqlite"),
        profile: PathBuf::from(profile),
        dir,
    }
}

struct Run {
    status: i32,
    stdout: Vec<u8>,
    stderr: String,
}

/// Runs the program with `args`, failing the test if it is still running
/// after 20 s (it is then killed).
fn run_within(mut command: Command) -> Run {
    let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} was still running after 20 s: it blocked");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut stdout).unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    Run { status: status.code().expect("exited"), stdout, stderr }
}

fn command(s: &Store, args: &[&std::ffi::OsStr]) -> Command {
    let mut c = Command::new(PROGRAM);
    c.arg("-q").arg("--store-dir").arg(&s.store).args(args);
    c
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo {}", path.display());
}

#[test]
fn a_fifo_as_closure_file_or_database_is_refused_at_once() {
    let s = make_store(3);
    let fifo = s.dir.path().join("fifo");
    mkfifo(&fifo);
    let out = s.dir.path().join("out.tar");
    let r = run_within(command(
        &s,
        &["--closure-file".as_ref(), fifo.as_os_str(), "-o".as_ref(), out.as_os_str(), s.profile.as_os_str()],
    ));
    assert_eq!(r.status, 6, "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!(
            "guix-docker-native: error: closure file {}: is a pipe with no writer: nothing could be read from it\n",
            fifo.display()
        )
    );
    let r = run_within(command(
        &s,
        &["--database".as_ref(), fifo.as_os_str(), "-o".as_ref(), out.as_os_str(), s.profile.as_os_str()],
    ));
    assert_eq!(r.status, 8, "{}", r.stderr);
    assert!(r.stderr.contains(&format!("store database {}: is a FIFO", fifo.display())), "{}", r.stderr);
    let r = run_within(command(
        &s,
        &["--database".as_ref(), "/dev/zero".as_ref(), "-o".as_ref(), out.as_os_str(), s.profile.as_os_str()],
    ));
    assert_eq!(r.status, 8, "{}", r.stderr);
    assert!(r.stderr.contains("store database /dev/zero: is a character device"), "{}", r.stderr);
    assert!(!out.exists());
}

#[test]
fn a_refused_closure_file_line_is_named_with_its_number() {
    let s = make_store(3);
    let list = s.dir.path().join("closure.txt");
    let out = s.dir.path().join("out.tar");
    let elsewhere = Path::new("/elsewhere").join(s.profile.file_name().unwrap());
    fs::write(&list, format!("{}\n\n{}\n", s.profile.display(), elsewhere.display())).unwrap();
    let r = run_within(command(
        &s,
        &["--closure-file".as_ref(), list.as_os_str(), "-o".as_ref(), out.as_os_str(), s.profile.as_os_str()],
    ));
    assert_eq!(r.status, 3, "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!(
            "guix-docker-native: error: closure file {}, line 3: '{}': not under the store directory {}\n",
            list.display(),
            elsewhere.display(),
            s.store.display()
        )
    );
    assert!(!out.exists());
}

#[test]
fn a_generated_store_gives_one_layer_per_slot() {
    let s = make_store(40);
    let out = s.dir.path().join("out.tar");
    let r = run_within(command(
        &s,
        &[
            "--database".as_ref(),
            s.database.as_os_str(),
            "--max-layers".as_ref(),
            "10".as_ref(),
            "-o".as_ref(),
            out.as_os_str(),
            s.profile.as_os_str(),
        ],
    ));
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(r.stdout, format!("{}\n", out.display()).into_bytes());
    let mut archive = tar::Archive::new(fs::File::open(&out).unwrap());
    let mut manifest = None;
    let mut names = Vec::new();
    let prefix = format!("{}/", &s.store.to_str().unwrap()[1..]);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        if name == "manifest.json" {
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            manifest = Some(serde_json::from_str::<serde_json::Value>(&text).unwrap());
        } else if name.ends_with("/layer.tar") {
            let mut layer = Vec::new();
            entry.read_to_end(&mut layer).unwrap();
            for e in tar::Archive::new(&layer[..]).entries().unwrap() {
                let e = e.unwrap();
                let path = e.path().unwrap().to_string_lossy().into_owned();
                if let Some(rest) = path.strip_prefix(&prefix) {
                    let rest = rest.trim_end_matches('/');
                    if !rest.is_empty() && !rest.contains('/') {
                        names.push(rest.to_string());
                    }
                }
            }
        }
    }
    let layers = manifest.unwrap()[0]["Layers"].as_array().unwrap().len();
    assert_eq!(layers, 10);
    // Every item and the profile, each once.
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 41);
}

#[test]
fn a_wal_database_in_a_read_only_directory_is_explained() {
    let s = make_store(3);
    let db_dir = s.database.parent().unwrap().to_path_buf();
    {
        let connection = rusqlite::Connection::open(&s.database).unwrap();
        let mode: String = connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)).unwrap();
        assert_eq!(mode, "wal");
    }
    // The last connection's close removed the -wal and -shm files.
    assert!(!db_dir.join("db.sqlite-shm").exists());
    fs::set_permissions(&db_dir, fs::Permissions::from_mode(0o555)).unwrap();
    let build = |as_nobody: bool| {
        let mut c = command(&s, &["--database".as_ref(), s.database.as_os_str(), "-o".as_ref(), "-".as_ref(), s.profile.as_os_str()]);
        // root may write to any directory: run as another user.
        if as_nobody && unsafe { libc::geteuid() } == 0 {
            c.uid(65534).gid(65534);
        }
        run_within(c)
    };
    let r = build(true);
    assert_eq!(r.status, 8, "{}", r.stderr);
    let expected = format!(
        "guix-docker-native: error: store database {db}: in WAL mode, which SQLite reads only with the files \
         {db}-wal and {db}-shm beside it; they are missing or unreadable and cannot be made, since this user \
         cannot write to {dir}; read it as a user who can (the Guix daemon's user), or give --closure-file instead",
        db = s.database.display(),
        dir = db_dir.display()
    );
    assert!(r.stderr.starts_with(&expected), "{}", r.stderr);
    // Where this user may write, the same database is read.
    fs::set_permissions(&db_dir, fs::Permissions::from_mode(0o755)).unwrap();
    let r = build(false);
    assert_eq!(r.status, 0, "{}", r.stderr);
}

/// `--closure-file <(guix gc -R ITEM)`: a pipe with a writer is read, and
/// gives the same image as the same list in a file.
#[test]
fn a_closure_file_from_a_pipe_with_a_writer_is_read() {
    let s = make_store(5);
    let list = s.dir.path().join("closure.txt");
    let mut closure: Vec<String> = fs::read_dir(&s.store)
        .unwrap()
        .map(|e| e.unwrap().path().to_str().unwrap().to_string())
        .collect();
    closure.sort();
    fs::write(&list, closure.join("\n") + "\n").unwrap();
    let from_file = s.dir.path().join("file.tar");
    let r = run_within(command(
        &s,
        &["--closure-file".as_ref(), list.as_os_str(), "-o".as_ref(), from_file.as_os_str(), s.profile.as_os_str()],
    ));
    assert_eq!(r.status, 0, "{}", r.stderr);
    // bash's process substitution, with a writer that takes its time.
    let from_pipe = s.dir.path().join("pipe.tar");
    let mut c = Command::new("bash");
    c.arg("-c")
        .arg(format!(
            "exec {} -q --store-dir '{}' --closure-file <(sleep 0.5; cat '{}') -o '{}' '{}'",
            PROGRAM,
            s.store.display(),
            list.display(),
            from_pipe.display(),
            s.profile.display()
        ));
    let r = run_within(c);
    assert_eq!(r.status, 0, "{}", r.stderr);
    assert_eq!(fs::read(&from_file).unwrap(), fs::read(&from_pipe).unwrap());
}

/// A pipe whose writer never writes nor closes is waited for, but SIGINT
/// stops the wait at once: exit 130, nothing written.
#[test]
fn waiting_for_a_silent_pipe_is_stopped_by_sigint() {
    let s = make_store(3);
    let out = s.dir.path().join("out.tar");
    let mut c = Command::new("bash");
    c.arg("-c").arg(format!(
        "exec {} -q --store-dir '{}' --closure-file <(exec sleep 60 2>/dev/null) -o '{}' '{}'",
        PROGRAM,
        s.store.display(),
        out.display(),
        s.profile.display()
    ));
    let mut child = c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert!(child.try_wait().unwrap().is_none(), "the program did not wait for the pipe's writer");
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "SIGINT did not stop the wait for the pipe");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted by SIGINT"), "{stderr}");
    assert!(!out.exists());
}
