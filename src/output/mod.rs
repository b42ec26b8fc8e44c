//! Where the archive is written, and what each kind of output path means.
//!
//! - `-` ([`Output::Stdout`]) and the names of file descriptors
//!   (`/dev/stdout`, `/dev/stderr`, `/dev/stdin`, `/dev/fd/N`,
//!   `/proc/self/fd/N`) are that descriptor, written at its position, as a
//!   shell redirection would; it must be open for writing.
//! - A character device (`/dev/null`) or a FIFO is opened and written in
//!   place: nothing is created or renamed.  The open does not block: a FIFO
//!   with no reader is an error.
//! - A regular file, or a name that does not exist, is written into an
//!   unnamed temporary file in its directory (`O_TMPFILE`), which is linked
//!   to its name only once the whole archive is there (replacing an
//!   existing file atomically, by a rename).  Where the file system has no
//!   `O_TMPFILE`, the temporary file is `.gdn-tmp-<tag>-<pid>-<random>`
//!   beside the output.  After an error, a panic or a cancelled build
//!   nothing is at (or beside) the output path.
//! - A symlink is followed: to a regular file, its target is replaced (the
//!   symlink stays); to a character device or FIFO, that is written in
//!   place; to anything else, or to nothing, it is refused.
//! - A directory, a socket, a block device: refused, naming the path.
//!
//! [`refuse_inputs`] refuses an output that is one of the build's inputs.
//!
//! The parts: `destination.rs` opens what a path names and makes a regular
//! file appear at its name at the end; `pipe.rs` writes in order, to files
//! in pieces and to pipes no more than they have room for; `inputs.rs`
//! refuses an output that is an input.

mod destination;
mod inputs;
mod pipe;
mod sys;

use std::path::PathBuf;

pub use destination::{descriptor_of, is_standard_output, OutputFile};
pub use inputs::{refuse_build_inputs, refuse_inputs, Input};
pub use pipe::{write_all_at, PieceWriter, PipeWaitCancelled, PipeWriter, WRITE_PIECE};

/// Where the archive goes, as the caller names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A file: what each kind of path means (a regular file, a symlink, a
    /// device, a FIFO, `/dev/stdout`) is said above.
    Path(PathBuf),
    /// Standard output, streamed.
    Stdout,
}
