//! A layer made into a blob: its tar is produced once, hashed (the
//! `diff_id`), compressed on its own and written to a file from a given
//! offset, the compressed bytes hashed and counted on the way (the blob's
//! digest and size, known only at its end).
//!
//! The compressors are [`crate::compress`]'s: gzip in fixed 1 MiB blocks,
//! zstd with fixed jobs, so a blob's bytes do not depend on the number of
//! threads.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::archive::{self, Destination, Hashing, LayerJob, Shared, TarWriter};
use crate::compress::{self, Sink};
use crate::error::{Error, ErrorKind, Result};
use crate::options::Compression;
use crate::output::{write_all_at, WRITE_PIECE};
use crate::tarfmt;

/// The media type of a layer compressed with `compression`.
pub fn layer_media_type(compression: Compression) -> &'static str {
    match compression {
        Compression::None => "application/vnd.oci.image.layer.v1.tar",
        Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
        Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
    }
}

/// What a layer blob turned out to be.
#[derive(Debug, Clone, Copy)]
pub struct LayerBlob {
    /// SHA-256 of the uncompressed tar.
    pub diff_id: [u8; 32],
    /// SHA-256 and length of the blob (the compressed tar).
    pub digest: [u8; 32],
    pub size: u64,
}

/// The digest and size a [`CountingFile`] saw, once finished.
type Seen = Arc<Mutex<Option<([u8; 32], u64)>>>;

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
        *seen.lock().unwrap() = Some((hasher.finalize().into(), written));
        Ok(())
    }
}

/// The most a layer of `len` bytes can take compressed, with either
/// compressor (gzip's stored blocks and member headers, zstd's raw blocks
/// and frame header, both well under this).
pub fn compressed_bound(len: u64) -> u64 {
    len + len / 128 + (1 << 20)
}

/// How a layer is compressed: the kind, level and worker threads.
#[derive(Debug, Clone, Copy)]
pub struct Compressor {
    pub kind: Compression,
    pub level: i32,
    pub threads: usize,
}

/// Produces layer `index` (`job`) into `file` from `offset` on.  `name` is
/// the output's name, for errors.
pub fn produce_layer_blob(
    shared: &Shared,
    job: &LayerJob,
    index: usize,
    file: File,
    offset: u64,
    compressor: Compressor,
    name: &Path,
) -> Result<LayerBlob> {
    let seen: Seen = Arc::new(Mutex::new(None));
    let counting = CountingFile { file, offset, written: 0, hasher: Sha256::new(), seen: Arc::clone(&seen) };
    let sink = compress::compressor(compressor.kind, compressor.level, compressor.threads, Box::new(counting))
        .map_err(|e| Error::output(name, &e))?;
    let (produced, written) = std::thread::scope(|s| {
        let (tx, rx) = mpsc::sync_channel(archive::POOL_BUFFERS);
        let writer = s.spawn(move || archive::write_chunks(rx, sink, shared.pool, name, shared.abort));
        // The writer ends when the TarWriter, which holds the sender, is gone.
        let produced = archive::stop_others_on_error(shared.abort, || {
            let mut w = TarWriter::new(shared, Destination::Stream(tx), 0, Hashing::Inline(Sha256::new()));
            for (unit, host_file) in job.units.iter().zip(&job.host_files) {
                archive::write_unit(&mut w, unit, host_file.as_ref())?;
            }
            w.put(&tarfmt::END_OF_ARCHIVE)?;
            if w.written() != job.len {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!(
                        "the store changed during the build: layer {} has {} bytes, {} were planned",
                        index + 1,
                        w.written(),
                        job.len
                    ),
                ));
            }
            w.finish()
        });
        (produced, writer.join().expect("writer thread panicked"))
    });
    let mut errors = Vec::new();
    if let Err(e) = written {
        errors.push(e);
    }
    let diff_id = match produced {
        Ok(d) => d.expect("an inline hash"),
        Err(e) => {
            errors.push(e);
            [0; 32]
        }
    };
    if let Some(e) = archive::first_real_error(errors) {
        return Err(e);
    }
    let (digest, size) = seen.lock().unwrap().expect("the blob's sink was finished");
    Ok(LayerBlob { diff_id, digest, size })
}
