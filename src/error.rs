//! The library's one error type.
//!
//! Every failure carries a stable numbered [`ErrorKind`] (the C ABI's result
//! code) and a message that names the offending input and says what is wrong.

use std::fmt;
use std::path::Path;

/// Stable result codes.  The numbers are part of the C ABI: never renumber,
/// only append.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A required pointer argument was NULL (C ABI only).
    NullArgument = 1,
    /// An option or argument has an invalid value (tag, max-layers, system, ...).
    InvalidArgument = 2,
    /// A path is not a store item: relative, outside the store, badly named.
    InvalidStorePath = 3,
    /// The closure is inconsistent: it lacks the item or a referenced item.
    IncompleteClosure = 4,
    /// The closure holds something an image cannot carry (socket, FIFO,
    /// device node, a `.wh.` name, conflicting paths).
    UnsupportedFile = 5,
    /// Reading the store failed: a missing or unreadable file, a file that
    /// changed while it was being archived.
    Io = 6,
    /// The output could not be written: missing directory, a directory in
    /// the way, a full disk.
    Output = 7,
    /// The store database could not be read.
    Database = 8,
    /// The build was interrupted (signal, or cancelled by the caller).
    Cancelled = 9,
    /// A bug: the library panicked.  The panic did not cross the boundary.
    Panic = 10,
    /// A C handle used against its rules while a build uses it (C ABI only).
    Busy = 11,
}

impl ErrorKind {
    /// The number a C caller sees.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// An error: its kind and a message for a person.
#[derive(Debug, Clone)]
pub struct Error {
    /// What failed, as a stable code.
    pub kind: ErrorKind,
    /// What went wrong, naming the input: `tag 'Hello': repository names must be lowercase`.
    pub message: String,
    /// Set on the error of a thread that stopped only because another
    /// part of the build failed: the other failure is the one to report.
    pub(crate) knock_on: bool,
}

/// The library's result: a value or an [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error { kind, message: message.into(), knock_on: false }
    }

    /// The error of a build the caller cancelled.
    pub fn cancelled() -> Error {
        Error::new(ErrorKind::Cancelled, "interrupted: the build was cancelled")
    }

    /// The error of a thread that stopped because another one failed.
    pub(crate) fn knock_on(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error { knock_on: true, ..Error::new(kind, message) }
    }

    /// An [`ErrorKind::InvalidArgument`] error.
    pub fn invalid_argument(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    /// An I/O failure on `path` while doing `what` ("reading", "opening").
    pub fn io(path: &Path, what: &str, err: &std::io::Error) -> Error {
        Error::new(ErrorKind::Io, format!("{}: {} failed: {}", path.display(), what, err))
    }

    /// An I/O failure writing the output `path`.
    pub fn output(path: &Path, err: &std::io::Error) -> Error {
        Error::new(ErrorKind::Output, format!("{}: cannot write output: {}", path.display(), err))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
