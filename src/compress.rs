//! Compression of the whole archive, on every core, with output that does
//! not depend on the number of threads.
//!
//! - gzip: the input is cut into fixed 1 MiB blocks, each compressed by a
//!   worker into a gzip member of its own (by libdeflate, which compresses
//!   a whole buffer at once), and the members are written in order.
//!   Concatenated members are one valid gzip stream (RFC 1952), read by
//!   every gzip reader (Go's, which Docker and podman use, included).
//!   [`GzipSeries`] compresses several streams (an oci-archive's blobs)
//!   one after the other on the same workers, without waiting at each
//!   stream's end.
//! - zstd: libzstd's own workers; with at least one worker its output is the
//!   same whatever their number.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::options::Compression;

/// Where the writer thread puts the archive's bytes, in order.
pub trait Sink: Write + Send {
    /// Writes out everything still buffered and ends the stream.
    fn finish(self: Box<Self>) -> io::Result<()>;
}

impl Sink for std::fs::File {
    fn finish(self: Box<Self>) -> io::Result<()> {
        Ok(())
    }
}

/// Wraps `inner` in the compressor `kind` asks for.
pub fn compressor(kind: Compression, level: i32, threads: usize, inner: Box<dyn Sink>) -> io::Result<Box<dyn Sink>> {
    Ok(match kind {
        Compression::None => inner,
        Compression::Gzip => {
            let mut gz = ParallelGzip::new(level, threads);
            gz.start(inner);
            Box::new(gz)
        }
        Compression::Zstd => {
            let mut enc = zstd::stream::write::Encoder::new(inner, level)?;
            // At least one worker, always: that fixes the output bytes.
            enc.multithread(threads.max(1) as u32)?;
            // A fixed job size, a quarter of the level's default (8 MiB at
            // level 3).  libzstd keeps up to 2 x workers + 3 output buffers
            // of a job's size, and how many it uses depends on timing: small
            // jobs keep the peak memory low and nearly the same whatever the
            // archive's size, for 0.4% more bytes.  Being fixed, the job
            // size keeps the output independent of the thread count.
            enc.set_parameter(zstd::stream::raw::CParameter::JobSize(ZSTD_JOB_SIZE))?;
            // Each job starts with the last half window of the input before
            // it as its dictionary (overlap log 8; level 3's default, 6, is
            // an eighth), which wins back what the small jobs lose: on a tar
            // of Debian's /usr/bin and /usr/share/doc, 0.1% smaller than
            // `zstd -3 -T0`'s 8 MiB jobs, where an eighth was 1.5% larger,
            // for a quarter more CPU time and no more memory (README,
            // "Reproducible").  Fixed, it keeps the bytes independent of the
            // thread count too.
            enc.set_parameter(zstd::stream::raw::CParameter::OverlapSizeLog(ZSTD_OVERLAP_LOG))?;
            enc.include_checksum(true)?;
            Box::new(ZstdSink(enc))
        }
    })
}

/// Bytes of input per zstd job.
const ZSTD_JOB_SIZE: u32 = 2 << 20;

/// How much of the window before a zstd job it sees: 2^(8 - 9) of it.
const ZSTD_OVERLAP_LOG: u32 = 8;

struct ZstdSink(zstd::stream::write::Encoder<'static, Box<dyn Sink>>);

impl Write for ZstdSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Sink for ZstdSink {
    fn finish(self: Box<Self>) -> io::Result<()> {
        let mut inner = self.0.finish()?;
        inner.flush()?;
        inner.finish()
    }
}

const GZIP_BLOCK: usize = 1 << 20;

type Job = (Vec<u8>, Sender<io::Result<Vec<u8>>>);

/// What the writing side of [`ParallelGzip`] waits for, in order.
enum Pending {
    /// A block's member, being compressed.
    Member(Receiver<io::Result<Vec<u8>>>),
    /// The end of the stream whose members came before: its sink is
    /// finished, and the next stream's takes its place.
    End,
}

/// gzip in parallel blocks, as pigz does, but one member per block.
///
/// It compresses one or more streams one after the other (the blobs of an
/// oci-archive, see [`GzipSeries`]): a stream's blocks go to the workers
/// while the last ones of the stream before are still being compressed,
/// so the workers do not wait at each stream's end.  Each stream is cut
/// into blocks of its own (its last one partial), so its members are the
/// same as when it is compressed alone.
struct ParallelGzip {
    /// The sink of the stream whose members are written next.
    current: Option<Box<dyn Sink>>,
    /// The sinks of the streams started after it, in order.
    waiting: VecDeque<Box<dyn Sink>>,
    level: u32,
    block: Vec<u8>,
    pending: VecDeque<Pending>,
    /// Members in `pending`.
    members: usize,
    max_pending: usize,
    /// Set once writing a member or finishing a sink failed: what follows
    /// would go to the wrong place.
    failed: bool,
    /// A stream is started and not ended.
    open: bool,
    jobs: Option<Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

/// One block as a gzip member, by libdeflate, which deflates a whole
/// buffer at once (faster than zlib at the same level, and no larger).
/// Its header has no name, mtime 0 and a fixed OS byte: the member depends
/// on the data and level alone.  `deflater` is the worker's own.
fn gzip_member(deflater: &mut libdeflater::Compressor, data: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = vec![0; deflater.gzip_compress_bound(data.len())];
    let n = deflater.gzip_compress(data, &mut out).map_err(|e| io::Error::other(format!("gzip: {e:?}")))?;
    out.truncate(n);
    Ok(out)
}

/// The libdeflate level a user's gzip level (1-9, zlib's scale) is
/// deflated at: the fastest whose output, in these 1 MiB blocks, is no
/// larger than zlib's at that level, with a margin (a tar of Debian's
/// `/usr/bin` and `/usr/share/doc`, `level_measurement` below; README,
/// "Reproducible").  The default, 6, is libdeflate's 4: 0.4% smaller than
/// zlib's 6 and 1.6 times as fast.
fn libdeflate_level(level: u32) -> i32 {
    match level {
        0..=2 => 1,
        3 => 2,
        4 => 3,
        5 | 6 => 4,
        7 | 8 => 5,
        _ => 7,
    }
}

fn deflater(level: u32) -> libdeflater::Compressor {
    libdeflater::Compressor::new(libdeflater::CompressionLvl::new(libdeflate_level(level)).expect("libdeflate's levels are 1-12"))
}

impl ParallelGzip {
    /// Workers for streams to come; none started yet.
    fn new(level: i32, threads: usize) -> ParallelGzip {
        let threads = threads.max(1);
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let level = level.clamp(1, 9) as u32;
        let workers = (0..threads)
            .map(|_| {
                let rx = Arc::clone(&rx);
                std::thread::spawn(move || {
                    let mut deflater = deflater(level);
                    loop {
                        let job = rx.lock().map(|r| r.recv());
                        let Ok(Ok((data, reply))) = job else { return };
                        let _ = reply.send(gzip_member(&mut deflater, &data));
                    }
                })
            })
            .collect();
        ParallelGzip {
            current: None,
            waiting: VecDeque::new(),
            level,
            block: Vec::with_capacity(GZIP_BLOCK),
            pending: VecDeque::new(),
            members: 0,
            max_pending: 2 * threads,
            failed: false,
            open: false,
            jobs: Some(tx),
            workers,
        }
    }

    /// Starts the next stream, whose members go to `sink` once the
    /// streams started before it are finished.
    fn start(&mut self, sink: Box<dyn Sink>) {
        assert!(!self.open, "a gzip stream starts once the one before has ended");
        self.open = true;
        if self.current.is_none() && self.pending.is_empty() {
            self.current = Some(sink);
        } else {
            self.waiting.push_back(sink);
        }
    }

    /// Ends the stream being written: its last block goes to the workers,
    /// and its sink is finished once its members are written (later,
    /// without waiting for them here).
    fn end(&mut self) -> io::Result<()> {
        assert!(self.open, "a gzip stream ends once");
        self.open = false;
        self.submit_block()?;
        self.pending.push_back(Pending::End);
        Ok(())
    }

    fn check(&self) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other("gzip: an earlier write of this output failed"));
        }
        Ok(())
    }

    fn submit_block(&mut self) -> io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let data = std::mem::replace(&mut self.block, Vec::with_capacity(GZIP_BLOCK));
        let (reply, result) = mpsc::channel();
        let unsent = match &self.jobs {
            Some(jobs) => jobs.send((data, reply)).err().map(|e| e.0),
            None => Some((data, reply)),
        };
        if let Some((data, reply)) = unsent {
            // No workers left: compress here.
            let _ = reply.send(gzip_member(&mut deflater(self.level), &data));
        }
        self.pending.push_back(Pending::Member(result));
        self.members += 1;
        while self.members > self.max_pending {
            self.write_oldest()?;
        }
        Ok(())
    }

    /// Writes the oldest member (or ends the stream it closes, and those
    /// after it that have no members left to wait for).
    fn write_oldest(&mut self) -> io::Result<()> {
        self.check()?;
        let written = self.write_oldest_unchecked();
        self.failed = written.is_err();
        written
    }

    fn write_oldest_unchecked(&mut self) -> io::Result<()> {
        while let Some(next) = self.pending.pop_front() {
            match next {
                Pending::Member(rx) => {
                    self.members -= 1;
                    let member = rx.recv().map_err(|_| io::Error::other("a gzip worker stopped"))??;
                    let sink = self.current.as_mut().expect("a member belongs to a started stream");
                    return sink.write_all(&member);
                }
                Pending::End => {
                    let mut sink = self.current.take().expect("an end belongs to a started stream");
                    self.current = self.waiting.pop_front();
                    sink.flush()?;
                    sink.finish()?;
                }
            }
        }
        Ok(())
    }

    /// Waits for every member, finishing each stream's sink.
    fn drain(&mut self) -> io::Result<()> {
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        Ok(())
    }

    fn stop_workers(&mut self) {
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Write for ParallelGzip {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.check()?;
        let room = GZIP_BLOCK - self.block.len();
        let n = room.min(buf.len());
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == GZIP_BLOCK {
            self.submit_block()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One stream: the whole-archive compressor's sink.
impl Sink for ParallelGzip {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.end()?;
        self.drain()?;
        self.stop_workers();
        Ok(())
    }
}

impl Drop for ParallelGzip {
    fn drop(&mut self) {
        self.stop_workers();
    }
}

/// gzip of several streams one after the other on one set of workers (the
/// layers of an oci-archive, each a blob): a stream's blocks are
/// compressed while the streams before it are still being finished, so
/// that neither the workers nor the producer wait at each stream's end,
/// and a small stream (one block) does not keep the other cores idle.
/// Each stream's bytes are those [`compressor`] makes of it alone, for any
/// thread count.
///
/// [`GzipSeries::stream`] starts a stream; its sink's `finish` ends it
/// without waiting for its members; the stream's own sink is finished
/// (in order) once they are written, by whichever call writes them.
/// [`GzipSeries::finish`] waits for them all.
#[derive(Clone)]
pub struct GzipSeries(Arc<Mutex<ParallelGzip>>);

impl GzipSeries {
    pub fn new(level: i32, threads: usize) -> GzipSeries {
        GzipSeries(Arc::new(Mutex::new(ParallelGzip::new(level, threads))))
    }

    /// Starts the next stream, compressed into `sink`, and returns its
    /// input.  The streams started before it must have been ended.
    pub fn stream(&self, sink: Box<dyn Sink>) -> Box<dyn Sink> {
        self.0.lock().unwrap().start(sink);
        Box::new(SeriesStream(self.clone()))
    }

    /// Waits for every stream's members to be written and every stream's
    /// sink to be finished.
    pub fn finish(&self) -> io::Result<()> {
        let mut gz = self.0.lock().unwrap();
        gz.drain()?;
        gz.stop_workers();
        Ok(())
    }
}

/// The input of one stream of a [`GzipSeries`].
struct SeriesStream(GzipSeries);

impl Write for SeriesStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 .0.lock().unwrap().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink for SeriesStream {
    /// Ends the stream without waiting for its members.
    fn finish(self: Box<Self>) -> io::Result<()> {
        self.0 .0.lock().unwrap().end()
    }
}

impl Sink for io::Sink {
    fn finish(self: Box<Self>) -> io::Result<()> {
        Ok(())
    }
}

/// The settings that, with the library and the level, fix what
/// `compressor(kind, ...)` makes: part of the layer cache's compressor
/// format (`crate::cache::compressor_format`).
pub fn format_settings(kind: Compression) -> String {
    match kind {
        Compression::None => String::from("none"),
        Compression::Gzip => format!("gzip;libdeflate;block={GZIP_BLOCK}"),
        Compression::Zstd => format!(
            "zstd;libzstd={};job={ZSTD_JOB_SIZE};overlap={ZSTD_OVERLAP_LOG};checksum",
            zstd::zstd_safe::version_number()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// A sink that keeps what it is given, for the tests.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl Sink for Shared {
        fn finish(self: Box<Self>) -> io::Result<()> {
            Ok(())
        }
    }

    fn compress(kind: Compression, threads: usize, data: &[u8]) -> Vec<u8> {
        let out = Shared::default();
        let mut sink = compressor(kind, kind.levels().2, threads, Box::new(out.clone())).unwrap();
        for piece in data.chunks(300_000) {
            sink.write_all(piece).unwrap();
        }
        sink.finish().unwrap();
        let bytes = out.0.lock().unwrap().clone();
        bytes
    }

    fn sample() -> Vec<u8> {
        (0..5_000_000u32).map(|i| (i % 251) as u8 ^ (i / 7919) as u8).collect()
    }

    #[test]
    fn gzip_round_trips_and_ignores_thread_count() {
        let data = sample();
        let one = compress(Compression::Gzip, 1, &data);
        let four = compress(Compression::Gzip, 4, &data);
        assert_eq!(one, four);
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(&one[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
    }

    /// A sink that keeps what it is given and, when finished, records the
    /// order it was finished in.
    struct Recorded {
        bytes: Vec<u8>,
        index: usize,
        finished: Arc<Mutex<Vec<(usize, Vec<u8>)>>>,
    }
    impl Write for Recorded {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.bytes.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl Sink for Recorded {
        fn finish(self: Box<Self>) -> io::Result<()> {
            self.finished.lock().unwrap().push((self.index, self.bytes));
            Ok(())
        }
    }

    #[test]
    fn a_gzip_series_gives_each_stream_its_own_bytes() {
        let data = sample();
        // Streams of one partial block, several blocks, a block exactly,
        // and one byte.
        let streams: Vec<&[u8]> = vec![&data[..1000], &data[..3_500_000], &data[..GZIP_BLOCK], &data[..1], &data[7..]];
        for threads in [1, 3] {
            let series = GzipSeries::new(Compression::Gzip.levels().2, threads);
            let finished = Arc::new(Mutex::new(Vec::new()));
            for (index, stream) in streams.iter().enumerate() {
                let sink = Recorded { bytes: Vec::new(), index, finished: Arc::clone(&finished) };
                let mut input = series.stream(Box::new(sink));
                for piece in stream.chunks(300_000) {
                    input.write_all(piece).unwrap();
                }
                input.finish().unwrap();
            }
            series.finish().unwrap();
            let finished = finished.lock().unwrap();
            assert_eq!(finished.iter().map(|f| f.0).collect::<Vec<_>>(), [0, 1, 2, 3, 4], "finished in order");
            for (index, bytes) in finished.iter() {
                assert_eq!(*bytes, compress(Compression::Gzip, 2, streams[*index]), "stream {index}, {threads} threads");
            }
        }
    }

    #[test]
    fn zstd_round_trips_and_ignores_thread_count() {
        let data = sample();
        let one = compress(Compression::Zstd, 1, &data);
        let three = compress(Compression::Zstd, 3, &data);
        assert_eq!(one, three);
        assert_eq!(zstd::decode_all(&one[..]).unwrap(), data);
    }
}

/// The measurement behind the gzip levels (README, "Reproducible"): each
/// 1 MiB block of `GDN_GZIP_SAMPLE` (a tar of real files) deflated by zlib
/// (zlib-rs, through flate2: what gzip blocks were deflated with before
/// libdeflate) and by libdeflate at levels 1-9, one thread, CPU
/// time of this thread; fails when a user's level gives more bytes than
/// zlib's at that level.  Run with
/// `GDN_GZIP_SAMPLE=FILE cargo test --release --lib gzip_levels -- --ignored --nocapture`.
#[cfg(test)]
mod level_measurement {
    use super::*;

    fn thread_cpu() -> f64 {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: one timespec written by the call.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
    }

    fn zlib(level: u32, data: &[u8]) -> usize {
        data.chunks(GZIP_BLOCK)
            .map(|block| {
                let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
                enc.write_all(block).unwrap();
                enc.finish().unwrap().len()
            })
            .sum()
    }

    fn libdeflate(level: i32, data: &[u8]) -> usize {
        let mut d = libdeflater::Compressor::new(libdeflater::CompressionLvl::new(level).unwrap());
        data.chunks(GZIP_BLOCK).map(|block| gzip_member(&mut d, block).unwrap().len()).sum()
    }

    #[test]
    #[ignore = "a measurement: needs GDN_GZIP_SAMPLE"]
    fn gzip_levels() {
        let data = std::fs::read(std::env::var("GDN_GZIP_SAMPLE").expect("GDN_GZIP_SAMPLE=FILE")).unwrap();
        println!("sample: {} bytes", data.len());
        let mut zlib_rows = Vec::new();
        for level in 1..=9 {
            let t = thread_cpu();
            let size = zlib(level, &data);
            zlib_rows.push((size, thread_cpu() - t));
            println!("zlib {level}: {size} bytes, {:.2} s", thread_cpu() - t);
        }
        let mut ours = std::collections::BTreeMap::new();
        for level in 1..=9 {
            let t = thread_cpu();
            let size = libdeflate(level, &data);
            ours.insert(level, (size, thread_cpu() - t));
            println!("libdeflate {level}: {size} bytes, {:.2} s", thread_cpu() - t);
        }
        for user in 1..=9u32 {
            let (zsize, ztime) = zlib_rows[user as usize - 1];
            let (size, time) = ours[&libdeflate_level(user)];
            println!(
                "level {user} -> libdeflate {}: {size} bytes ({:.4} of zlib's), {:.2}x zlib's speed",
                libdeflate_level(user),
                size as f64 / zsize as f64,
                ztime / time
            );
            assert!(size <= zsize, "level {user}: libdeflate {} gives {size} bytes, zlib {zsize}", libdeflate_level(user));
        }
    }
}
