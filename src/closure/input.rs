//! Opening the inputs that are not store items (the closure file, the store
//! database) without ever blocking.
//!
//! `open` on a FIFO waits for a writer, possibly forever, and a device can
//! block in `open` or in `read`; neither is a file the build could read.
//! So the file is opened with `O_NONBLOCK`, which never waits, and what was
//! opened must be a regular file; the closure file may also be a pipe with
//! a writer (`--closure-file <(guix gc -R ITEM)`), read by [`read_input`]
//! in a loop that never waits without looking at the cancel flag.

use std::fs::{File, Metadata};
use std::io::{ErrorKind as IoErrorKind, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, ErrorKind};

/// Opens `path` for reading, refusing anything but a regular file (after
/// following symlinks).  `what` names the input in messages ("closure
/// file", "store database"); errors are of kind `kind`.
pub fn open_regular_file(path: &Path, what: &str, kind: ErrorKind) -> Result<(File, Metadata), Error> {
    let fail = |why: String| Error::new(kind, format!("{what} {}: {why}", path.display()));
    let (file, metadata) = open_without_waiting(path, what, kind)?;
    match not_a_regular_file(&metadata) {
        None => Ok((file, metadata)),
        Some(kind) => Err(fail(format!("is {kind}, not a regular file"))),
    }
}

/// Reads the whole of `path`, a regular file or a pipe (a FIFO, or the
/// `/dev/fd/N` of a shell's process substitution) that has a writer.  A
/// pipe with no writer is refused at once; a writer that is slow is waited
/// for in steps of 100 ms, each time looking at `cancel`, so a signal
/// stops the wait.  Anything else (a device, a directory) is refused.
pub fn read_input(path: &Path, what: &str, kind: ErrorKind, cancel: Option<&AtomicBool>) -> Result<Vec<u8>, Error> {
    let fail = |why: String| Error::new(kind, format!("{what} {}: {why}", path.display()));
    let (mut file, metadata) = open_without_waiting(path, what, kind)?;
    let mut data = Vec::new();
    if !metadata.file_type().is_fifo() {
        if let Some(kind) = not_a_regular_file(&metadata) {
            return Err(fail(format!("is {kind}, not a regular file")));
        }
        file.read_to_end(&mut data).map_err(|err| fail(format!("cannot be read: {err}")))?;
        return Ok(data);
    }
    let mut buf = [0u8; 64 << 10];
    loop {
        if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(Error::cancelled());
        }
        match file.read(&mut buf) {
            // With O_NONBLOCK, end of file is also what a pipe that has
            // no writer (yet, or any more) reads as.
            Ok(0) if data.is_empty() => {
                return Err(fail("is a pipe with no writer: nothing could be read from it".to_string()))
            }
            Ok(0) => return Ok(data),
            Ok(n) => data.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == IoErrorKind::Interrupted => {}
            Err(err) if err.kind() == IoErrorKind::WouldBlock => {
                let mut pfd = libc::pollfd { fd: file.as_raw_fd(), events: libc::POLLIN, revents: 0 };
                // SAFETY: one valid pollfd, for the duration of the call.
                unsafe { libc::poll(&mut pfd, 1, 100) };
            }
            Err(err) => return Err(fail(format!("cannot be read: {err}"))),
        }
    }
}

/// Opens `path` for reading with `O_NONBLOCK`, which never waits (for a
/// FIFO's writer, a device), and examines what was opened.
fn open_without_waiting(path: &Path, what: &str, kind: ErrorKind) -> Result<(File, Metadata), Error> {
    let fail = |why: String| Error::new(kind, format!("{what} {}: {why}", path.display()));
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|err| match err.kind() {
            IoErrorKind::NotFound => fail("no such file".to_string()),
            IoErrorKind::PermissionDenied => fail("cannot be read: permission denied".to_string()),
            _ => fail(format!("cannot be opened: {err}")),
        })?;
    let metadata = file.metadata().map_err(|err| fail(format!("cannot be examined: {err}")))?;
    Ok((file, metadata))
}

/// What a file that is not a regular file is, in a user's words; `None`
/// for a regular file.
pub fn not_a_regular_file(metadata: &Metadata) -> Option<&'static str> {
    let t = metadata.file_type();
    if t.is_file() {
        None
    } else if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO (named pipe), which could make the build wait forever")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        Some("not a regular file")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::time::Duration;

    #[test]
    fn fifos_devices_and_directories_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        // On a thread, so that a blocking open fails the test instead of hanging it.
        let (done, results) = std::sync::mpsc::channel();
        let paths = vec![fifo.clone(), PathBuf::from("/dev/null"), dir.path().to_path_buf()];
        let opened = paths.clone();
        std::thread::spawn(move || {
            for path in opened {
                let _ = done.send(open_regular_file(&path, "closure file", ErrorKind::Io).map(|_| ()));
            }
        });
        for (path, expected) in paths.iter().zip(["is a FIFO (named pipe)", "is a character device", "is a directory"]) {
            let err = results.recv_timeout(Duration::from_secs(10)).expect("opening did not block").unwrap_err();
            assert_eq!(err.kind, ErrorKind::Io);
            let message = format!("closure file {}: {expected}", path.display());
            assert!(err.message.starts_with(&message), "{}", err.message);
        }

        let missing = dir.path().join("missing");
        let err = open_regular_file(&missing, "store database", ErrorKind::Database).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Database);
        assert_eq!(err.message, format!("store database {}: no such file", missing.display()));

        let regular = dir.path().join("file");
        std::fs::write(&regular, "x").unwrap();
        let (_, metadata) = open_regular_file(&regular, "closure file", ErrorKind::Io).unwrap();
        assert_eq!(metadata.len(), 1);
    }
}
