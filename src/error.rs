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
    /// Every kind, in the order of their codes.  This list is the one
    /// source of the result codes: the C ABI's `gdn_result_name` and the
    /// Guile module (through it) take their names from here, the CLI's
    /// `--help` its exit-status text, and unit tests hold the header's
    /// `GDN_ERR_*` constants and README's table to it.
    pub const ALL: [ErrorKind; 11] = [
        ErrorKind::NullArgument,
        ErrorKind::InvalidArgument,
        ErrorKind::InvalidStorePath,
        ErrorKind::IncompleteClosure,
        ErrorKind::UnsupportedFile,
        ErrorKind::Io,
        ErrorKind::Output,
        ErrorKind::Database,
        ErrorKind::Cancelled,
        ErrorKind::Panic,
        ErrorKind::Busy,
    ];

    /// The number a C caller sees.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The kind whose code is `code`, if any (0, success, is none).
    pub fn from_code(code: i32) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|kind| kind.code() == code)
    }

    /// The kind's name: Guile's symbol for it, and, upper-cased with `-`
    /// as `_`, the C constant's name after `GDN_ERR_`.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::NullArgument => "null-argument",
            ErrorKind::InvalidArgument => "invalid-argument",
            ErrorKind::InvalidStorePath => "invalid-store-path",
            ErrorKind::IncompleteClosure => "incomplete-closure",
            ErrorKind::UnsupportedFile => "unsupported-file",
            ErrorKind::Io => "io",
            ErrorKind::Output => "output",
            ErrorKind::Database => "database",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Panic => "panic",
            ErrorKind::Busy => "busy",
        }
    }

    /// What the code means, for a person: the CLI's `--help` and README
    /// show this text.
    pub fn meaning(self) -> &'static str {
        match self {
            ErrorKind::NullArgument => "a required pointer argument was NULL (C ABI only)",
            ErrorKind::InvalidArgument => {
                "an invalid argument or option value: an unknown option, a missing ITEM, a bad tag, \
                 a number out of range (--max-layers 0), a string that is not UTF-8"
            }
            ErrorKind::InvalidStorePath => {
                "an item or closure path is not a store item: relative, outside the store, \
                 not named HASH-NAME"
            }
            ErrorKind::IncompleteClosure => "the closure lacks an item or an item it refers to",
            ErrorKind::UnsupportedFile => {
                "the closure holds what an image cannot carry: a socket, a FIFO, a device node, \
                 a name starting with .wh."
            }
            ErrorKind::Io => {
                "reading the store failed: a missing item, an unreadable file, a file that changed \
                 during the build"
            }
            ErrorKind::Output => {
                "the output could not be written: no such directory, a directory in the way, a full \
                 disk, a terminal or a closed standard output for -o -, a FIFO with no reader, an \
                 output that is an input of the build (the database, the closure file, a path in \
                 the store)"
            }
            ErrorKind::Database => "the store database could not be read",
            ErrorKind::Cancelled => {
                "the build was cancelled (the command line exits with 128 + the signal's number \
                 instead)"
            }
            ErrorKind::Panic => "internal error: a bug in the library (please report it)",
            ErrorKind::Busy => {
                "a handle used against its rules during a build: a setter on the options of a \
                 running build, a build started from a progress callback with its own options \
                 (C ABI only)"
            }
        }
    }

    /// Whether the command line can exit with this code: the C-only kinds
    /// cannot, and a cancelled build exits with 128 + the signal's number.
    pub fn is_cli_exit_status(self) -> bool {
        !matches!(self, ErrorKind::NullArgument | ErrorKind::Cancelled | ErrorKind::Busy)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_holds_every_code_once_in_order() {
        for (i, kind) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(kind.code(), i as i32 + 1, "{kind:?}");
            assert_eq!(ErrorKind::from_code(kind.code()), Some(*kind));
        }
        assert_eq!(ErrorKind::from_code(0), None);
        assert_eq!(ErrorKind::from_code(ErrorKind::ALL.len() as i32 + 1), None);
    }

    /// README's table of result codes ("Result codes and errors") is this
    /// list, row for row: code, C constant, Guile symbol, meaning.
    #[test]
    fn readme_lists_the_result_codes_as_they_are() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let start = readme.find("| Code | C constant | Guile symbol | Meaning |").expect("README has the result code table");
        let rows: Vec<&str> = readme[start..].lines().skip(2).take_while(|line| line.starts_with('|')).collect();
        let mut expected = vec!["| 0 | `GDN_OK` | — | success |".to_string()];
        for kind in ErrorKind::ALL {
            let constant = format!("GDN_ERR_{}", kind.name().to_uppercase().replace('-', "_"));
            expected.push(format!("| {} | `{constant}` | `{}` | {} |", kind.code(), kind.name(), kind.meaning()));
        }
        assert_eq!(rows, expected, "README's result code table differs from ErrorKind::ALL (src/error.rs)");
    }
}
