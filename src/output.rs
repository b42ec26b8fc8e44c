//! Where the archive is written: a temporary file beside the output,
//! renamed over it only when the whole archive is there, or standard output.
//! An error, a panic or a cancelled build drops the temporary file, so
//! nothing is left at (or beside) the output path.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::FromRawFd;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::compress::Sink;
use crate::error::{Error, ErrorKind, Result};
use crate::image::Output;

/// The most bytes given to the kernel in one write to a file.  Larger
/// writes at aligned offsets get large page-cache folios, and on the
/// machines the benchmark ran on (Linux 6.18, ext4, a VM that returns free
/// memory to its host) those cost 1.5-2.5 times the system time to fill
/// right after a large file was deleted; GNU tar's 10 KiB writes do not
/// (README, "Benchmark").
pub const WRITE_PIECE: usize = 32 << 10;

/// Writes all of `buf` at `offset`, in pieces of at most [`WRITE_PIECE`].
pub fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    let mut at = 0;
    for piece in buf.chunks(WRITE_PIECE) {
        file.write_all_at(piece, offset + at)?;
        at += piece.len() as u64;
    }
    Ok(())
}

/// A file written from start to end, in pieces of at most [`WRITE_PIECE`]:
/// where a compressor's output goes.
pub struct PieceWriter(pub File);

impl Write for PieceWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(&buf[..buf.len().min(WRITE_PIECE)])
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Sink for PieceWriter {
    fn finish(self: Box<Self>) -> io::Result<()> {
        Ok(())
    }
}

/// An output being written.
pub struct OutputFile {
    /// The handle to write through.
    pub file: File,
    /// `Some` for a file output: the temporary file and the final path.
    temp: Option<(tempfile::TempPath, PathBuf)>,
    /// The name to give in errors.
    name: PathBuf,
}

impl OutputFile {
    /// Checks the output path and opens where the archive will be written.
    pub fn open(output: &Output) -> Result<OutputFile> {
        match output {
            Output::Stdout => {
                // A duplicate of fd 1, so that dropping it leaves stdout open.
                let fd = unsafe { libc::dup(1) };
                if fd < 0 {
                    let err = std::io::Error::last_os_error();
                    return Err(Error::output(Path::new("-"), &err));
                }
                Ok(OutputFile { file: unsafe { File::from_raw_fd(fd) }, temp: None, name: PathBuf::from("-") })
            }
            Output::Path(path) => open_beside(path),
        }
    }

    /// Whether the handle can be written at any offset (a file, not a pipe).
    pub fn is_seekable(&self) -> bool {
        self.temp.is_some()
    }

    /// The name to give in errors.
    pub fn display_path(&self) -> PathBuf {
        self.name.clone()
    }

    /// Makes the output appear at its final path.
    pub fn commit(self) -> Result<()> {
        let Some((temp, path)) = self.temp else { return Ok(()) };
        // The mode a newly created file would get: 0666 less the umask.
        let mode = 0o666 & !process_umask();
        self.file
            .set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| Error::output(&path, &e))?;
        drop(self.file);
        temp.persist(&path).map_err(|e| Error::output(&path, &e.error))
    }
}

/// The umask, read without changing it (calling umask(2) twice would race
/// with threads creating files).
fn process_umask() -> u32 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}

fn open_beside(path: &Path) -> Result<OutputFile> {
    let bad = |why: &str| Error::new(ErrorKind::Output, format!("output '{}': {why}", path.display()));
    if path.as_os_str().is_empty() {
        return Err(bad("empty file name"));
    }
    if path.is_dir() {
        return Err(bad("is a directory"));
    }
    // A device or FIFO (`-o /dev/null`, a named pipe) is written as it is:
    // there is nothing to replace atomically.
    if let Ok(meta) = fs::metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        let ft = meta.file_type();
        if ft.is_char_device() || ft.is_fifo() || ft.is_block_device() {
            let file = fs::OpenOptions::new().write(true).open(path).map_err(|e| Error::output(path, &e))?;
            return Ok(OutputFile { file, temp: None, name: path.to_path_buf() });
        }
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(bad(&format!("the directory '{}' does not exist", dir.display())));
    }
    let base = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{base}."))
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| Error::output(path, &e))?;
    let (file, temp_path) = temp.into_parts();
    Ok(OutputFile { file, temp: Some((temp_path, path.to_path_buf())), name: path.to_path_buf() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn nothing_is_left_unless_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image.tar");
        let mut out = OutputFile::open(&Output::Path(path.clone())).unwrap();
        out.file.write_all(b"partial").unwrap();
        drop(out);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);

        let mut out = OutputFile::open(&Output::Path(path.clone())).unwrap();
        out.file.write_all(b"whole").unwrap();
        out.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"whole");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn bad_output_paths_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = OutputFile::open(&Output::Path(dir.path().to_path_buf())).err().unwrap();
        assert!(err.message.contains("is a directory"), "{}", err.message);
        let missing = dir.path().join("no/such/image.tar");
        let err = OutputFile::open(&Output::Path(missing)).err().unwrap();
        assert!(err.message.contains("does not exist"), "{}", err.message);
        assert_eq!(err.kind, ErrorKind::Output);
    }

    #[test]
    fn writes_in_pieces_put_every_byte_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..3 * WRITE_PIECE + 5).map(|i| (i % 251) as u8).collect();
        let at = fs::File::create(dir.path().join("at")).unwrap();
        write_all_at(&at, &data, 7).unwrap();
        let back = fs::read(dir.path().join("at")).unwrap();
        assert_eq!(back.len(), data.len() + 7);
        assert!(back[7..] == data[..]);

        let mut seq = PieceWriter(fs::File::create(dir.path().join("seq")).unwrap());
        seq.write_all(&data).unwrap();
        assert!(fs::read(dir.path().join("seq")).unwrap() == data);
    }

    #[test]
    fn devices_are_written_in_place() {
        let out = OutputFile::open(&Output::Path("/dev/null".into())).unwrap();
        assert!(!out.is_seekable());
        out.commit().unwrap();
        assert!(Path::new("/dev/null").exists());
    }
}
