//! A layer made into a blob: the stream a layer's tar goes to (once
//! produced and hashed, its `diff_id`, by [`crate::archive`]), which
//! compresses it on its own and writes it to a file from a given offset,
//! hashing and counting the compressed bytes on the way (the blob's digest
//! and size, known only at its end).
//!
//! The compressors are [`crate::compress`]'s: gzip in fixed 1 MiB blocks,
//! zstd with fixed jobs, so a blob's bytes do not depend on the number of
//! threads.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::archive::packaging::Stream;
use crate::compress::{self, Sink};
use crate::error::{Error, Result};
use crate::options::Compression;
use crate::output::{write_all_at, WRITE_PIECE};

/// The media type of a layer compressed with `compression`.
pub fn layer_media_type(compression: Compression) -> &'static str {
    match compression {
        Compression::None => "application/vnd.oci.image.layer.v1.tar",
        Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
        Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
    }
}

/// A file written from `offset` on, in order, hashing and counting what
/// goes in.
struct CountingFile {
    file: File,
    offset: u64,
    written: u64,
    hasher: Sha256,
    seen: Seen,
}

impl Write for CountingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let piece = &buf[..buf.len().min(WRITE_PIECE)];
        write_all_at(&self.file, piece, self.offset + self.written)?;
        self.hasher.update(piece);
        self.written += piece.len() as u64;
        Ok(piece.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink for CountingFile {
    fn finish(self: Box<Self>) -> io::Result<()> {
        let CountingFile { hasher, written, seen, .. } = *self;
        *seen.0.lock().unwrap() = Some((hasher.finalize().into(), written));
        Ok(())
    }
}

/// How a layer is compressed: the kind, level and worker threads.
#[derive(Debug, Clone, Copy)]
pub struct Compressor {
    pub kind: Compression,
    pub level: i32,
    pub threads: usize,
}

/// Where a blob's digest and size turn up once its stream is finished.
#[derive(Clone, Default)]
pub struct Seen(Arc<Mutex<Option<([u8; 32], u64)>>>);

impl Seen {
    /// The digest and size, once the stream is finished.
    pub fn get(&self) -> Option<([u8; 32], u64)> {
        *self.0.lock().unwrap()
    }
}

/// A stream that compresses a layer with `compressor` into `file` from
/// `offset` on; `name` is the output's, for errors.
pub fn blob_stream(file: File, offset: u64, compressor: Compressor, name: &Path) -> Result<(Stream, Seen)> {
    let seen = Seen::default();
    let counting = CountingFile { file, offset, written: 0, hasher: Sha256::new(), seen: seen.clone() };
    let sink = compress::compressor(compressor.kind, compressor.level, compressor.threads, Box::new(counting))
        .map_err(|e| Error::output(name, &e))?;
    Ok((Stream { sink, name: name.to_path_buf() }, seen))
}
