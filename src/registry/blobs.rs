//! Blobs into a repository: present or not (`HEAD`), mounted from another
//! repository, uploaded whole from memory (the config, a small layer), or
//! uploaded as they are made ([`Upload`], a layer's compressed stream).
//!
//! A streamed upload is `POST …/blobs/uploads/`, then one `PATCH` per
//! chunk of [`CHUNK_SIZE`] bytes (`Content-Range: FIRST-LAST`), then `PUT
//! LOCATION?digest=…` with the rest, sent by a thread of the upload's own
//! while the next chunk is compressed ([`Upload`]).  A chunk stays in
//! memory until the registry has acknowledged it, so a transient failure sends just that
//! chunk again: the registry is asked how much it holds (`GET LOCATION`,
//! its `Range`) and the chunk goes again from there.  When the registry
//! cannot resume (it lost the upload, or holds bytes other than the
//! chunks acknowledged), the push fails, naming the layer: the chunks
//! before are no longer in memory.  A blob that ends inside its first
//! chunk has its digest before anything is sent: it is looked up (`HEAD`)
//! and, when present, not sent at all.

use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};

use sha2::{Digest, Sha256};

use super::client::{query_value, Client, Request, Response};
use super::options::LayerState;
use super::Progress;
use crate::compress::Sink;
use crate::error::{Error, ErrorKind, Result};

/// Bytes of a blob sent in one `PATCH`, and kept in memory until the
/// registry has them: memory is at most jobs × this.
pub const CHUNK_SIZE: usize = 8 << 20;

/// Chunk buffers sent and given back, reused by the next uploads: each
/// is allocated once rather than by every upload's threads (glibc gives
/// new threads arenas of their own, where freed chunks would stay, which
/// took a push of 100 layers from 61 to 123 MiB).  At most
/// [`SPARE_CHUNKS`] are kept; [`release_chunks`] frees them.
static SPARE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
const SPARE_CHUNKS: usize = 8;

fn take_chunk() -> Vec<u8> {
    SPARE.lock().unwrap().pop().unwrap_or_else(|| Vec::with_capacity(CHUNK_SIZE))
}

fn give_back(mut chunk: Vec<u8>) {
    chunk.clear();
    let mut spare = SPARE.lock().unwrap();
    if chunk.capacity() >= CHUNK_SIZE && spare.len() < SPARE_CHUNKS {
        spare.push(chunk);
    }
}

/// Frees the spare chunks (at the end of a push).
pub fn release_chunks() {
    SPARE.lock().unwrap().clear();
}

/// What became of a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Already in the repository.
    Present,
    /// Mounted from this repository.
    Mounted(String),
    Uploaded,
}

/// Whether the repository has the blob `digest`.
pub fn exists(client: &Client, digest: &str, what: &str) -> Result<bool> {
    let what = format!("{what} {digest}: HEAD");
    let r = client.send(Request::new("HEAD", client.url(&format!("blobs/{digest}"))), &what)?;
    match r.status {
        200 => Ok(true),
        404 => Ok(false),
        401 | 403 => Err(client.unauthorized(&what, &r)),
        _ => Err(client.error(&what, &r, "")),
    }
}

/// Mounts `digest` from `from`: `Ok(None)` when mounted, else the
/// location of the upload the registry started instead (202).
pub fn mount(client: &Client, digest: &str, from: &str, what: &str) -> Result<Option<String>> {
    let what = format!("{what} {digest}: mount from {from}");
    let url = client.url(&format!("blobs/uploads/?mount={}&from={}", query_value(digest), query_value(from)));
    let r = client.send(Request::new("POST", url).header("content-length", "0"), &what)?;
    match r.status {
        201 => Ok(None),
        202 => Ok(Some(location(client, &r, &what)?)),
        401 | 403 => Err(client.unauthorized(&what, &r)),
        _ => Err(client.error(&what, &r, "")),
    }
}

/// Gives up the upload the registry started at `location` when it
/// declined a mount, so that it does not linger until the registry's
/// clean-up; best effort (a registry that keeps it loses nothing).
pub fn abandon(client: &Client, location: &str, what: &str) {
    let what = format!("{what}: cancelling the upload a declined mount started");
    let _ = client.send(Request::new("DELETE", location.to_string()), &what);
}

fn location(client: &Client, r: &Response, what: &str) -> Result<String> {
    match &r.location {
        Some(l) => Ok(client.absolute(l)),
        None => Err(client.error(what, r, "no Location header in the answer")),
    }
}

/// Starts an upload: its location.
fn start(client: &Client, what: &str) -> Result<String> {
    let what = format!("{what}: starting the upload");
    let r = client.send(Request::new("POST", client.url("blobs/uploads/")).header("content-length", "0"), &what)?;
    match r.status {
        202 => location(client, &r, &what),
        401 | 403 => Err(client.unauthorized(&what, &r)),
        _ => Err(client.error(&what, &r, "")),
    }
}

/// `location` with `?digest=` (or `&digest=`).
fn with_digest(location: &str, digest: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={}", query_value(digest))
}

/// Ends an upload at `location` with `rest`, naming it `digest`.
fn finish(client: &Client, location: &str, rest: &[u8], digest: &str, what: &str) -> Result<()> {
    let what = format!("{what} {digest}: PUT");
    let request = Request::new("PUT", with_digest(location, digest))
        .header("content-type", "application/octet-stream")
        .body(rest);
    let r = client.send(request, &what)?;
    match r.status {
        201 | 204 => Ok(()),
        401 | 403 => Err(client.unauthorized(&what, &r)),
        _ => Err(client.error(&what, &r, "")),
    }
}

/// Puts `bytes` (whose digest is `digest`) into the repository unless it
/// is there: present, mounted (from `mount_from`, when given and the
/// registry agrees), or uploaded in one `PUT`.
pub fn put_whole(client: &Client, bytes: &[u8], digest: &str, mount_from: Option<&str>, what: &str) -> Result<Outcome> {
    if exists(client, digest, what)? {
        return Ok(Outcome::Present);
    }
    let location = match mount_from {
        Some(from) => match mount(client, digest, from, what)? {
            None => return Ok(Outcome::Mounted(from.to_string())),
            Some(location) => location,
        },
        None => start(client, what)?,
    };
    finish(client, &location, bytes, digest, what)?;
    Ok(Outcome::Uploaded)
}

/// What became of a streamed upload: the blob's digest and size, known
/// as soon as its stream ends, and its outcome (or the error that stopped
/// it), known once the upload's thread is done with it.
#[derive(Default)]
pub struct UploadResult {
    blob: Mutex<Option<(String, u64)>>,
    outcome: Mutex<Option<Result<Outcome>>>,
    done: Condvar,
}

impl UploadResult {
    /// The blob's digest and size, once its stream has ended.
    pub fn blob(&self) -> Option<(String, u64)> {
        self.blob.lock().unwrap().clone()
    }

    /// A blob that was not streamed (the layer cache knew it, and the
    /// repository had it or mounted it): its digest, size and outcome.
    pub fn settle(&self, digest: String, size: u64, outcome: Outcome) {
        *self.blob.lock().unwrap() = Some((digest, size));
        self.set_outcome(Ok(outcome));
    }

    fn set_outcome(&self, outcome: Result<Outcome>) {
        let mut slot = self.outcome.lock().unwrap();
        if slot.is_none() {
            *slot = Some(outcome);
        }
        self.done.notify_all();
    }

    /// Waits until the upload is done: its outcome, or its error.
    pub fn wait(&self) -> Result<Outcome> {
        let mut slot = self.outcome.lock().unwrap();
        loop {
            if let Some(outcome) = slot.as_ref() {
                return outcome.clone();
            }
            slot = self.done.wait(slot).unwrap();
        }
    }
}

/// What the stream gives the upload's thread.
enum Piece {
    /// A full chunk, to `PATCH`.
    Chunk(Vec<u8>),
    /// The end: what is left (the whole blob, if no chunk went before) and
    /// the blob's digest.
    End(Vec<u8>, String),
}

/// A layer's compressed stream going to the registry as it is made.
///
/// The stream (on the layer's writer thread) fills a chunk and hashes it;
/// a thread of the upload's own sends the chunks and, once the stream has
/// ended, finishes the upload (or, for a blob that fit in one chunk, looks
/// it up and mounts or uploads it whole).  So compression goes on while a
/// chunk is on its way, and the producer moves on to its next layer while
/// the last requests of this one are answered: at most two chunks of an
/// upload are in memory (one filling, one being sent).  The `--jobs`
/// permit goes with the upload's thread, released when it is done.
pub struct Upload {
    chunk: Vec<u8>,
    /// Bytes the stream has given.
    size: u64,
    hasher: Sha256,
    /// The upload's thread, once started (with the first full chunk or the end).
    pieces: Option<SyncSender<Piece>>,
    /// Until the thread starts: what it needs.
    sender: Option<ChunkSender>,
    result: Arc<UploadResult>,
}

/// The upload's thread's side: sends chunks with `PATCH`, resuming after a
/// failure where the registry says it stands, and ends the upload.
struct ChunkSender {
    client: Arc<Client>,
    /// `layer N`, in errors.
    what: String,
    /// Its line in the push's report.
    index: usize,
    /// Bytes the registry has acknowledged.
    sent: u64,
    location: Option<String>,
    /// Blobs of other repositories: digest, repository.
    mount_hints: Arc<Vec<(String, String)>>,
    progress: Arc<Progress>,
    result: Arc<UploadResult>,
    failure: Arc<Mutex<Option<Error>>>,
    /// Released when the upload ends, whatever happens (the `--jobs` bound).
    _permit: super::Permit,
}

impl Upload {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: Arc<Client>,
        index: usize,
        what: String,
        mount_hints: Arc<Vec<(String, String)>>,
        progress: Arc<Progress>,
        result: Arc<UploadResult>,
        failure: Arc<Mutex<Option<Error>>>,
        permit: super::Permit,
    ) -> Upload {
        let sender = ChunkSender {
            client,
            what,
            index,
            sent: 0,
            location: None,
            mount_hints,
            progress,
            result: Arc::clone(&result),
            failure,
            _permit: permit,
        };
        Upload {
            chunk: take_chunk(),
            size: 0,
            hasher: Sha256::new(),
            pieces: None,
            sender: Some(sender),
            result,
        }
    }

    /// Gives `piece` to the upload's thread, starting it first if need be.
    fn give(&mut self, piece: Piece) -> io::Result<()> {
        if self.pieces.is_none() {
            let sender = self.sender.take().expect("the thread is not started yet");
            // Rendezvous: a chunk is handed over once the one before is sent.
            let (tx, rx) = mpsc::sync_channel::<Piece>(0);
            std::thread::Builder::new()
                .name("gdn-upload".into())
                .spawn(move || sender.run(rx))
                .map_err(|e| io::Error::other(format!("cannot start an upload thread: {e}")))?;
            self.pieces = Some(tx);
        }
        if self.pieces.as_ref().expect("started").send(piece).is_err() {
            // The thread stopped: the upload failed, and said why.
            let message = match self.result.outcome.lock().unwrap().as_ref() {
                Some(Err(e)) => e.message.clone(),
                _ => "the upload stopped".to_string(),
            };
            return Err(io::Error::other(message));
        }
        Ok(())
    }
}

impl ChunkSender {
    fn run(mut self, pieces: Receiver<Piece>) {
        loop {
            let outcome = match pieces.recv() {
                Ok(Piece::Chunk(chunk)) => {
                    let sent = self.send_chunk(&chunk);
                    give_back(chunk);
                    match sent {
                        Ok(()) => continue,
                        Err(e) => Err(e),
                    }
                }
                Ok(Piece::End(rest, digest)) => {
                    let done = self.complete(&rest, &digest);
                    give_back(rest);
                    done
                }
                // The stream was dropped unfinished (another layer failed,
                // or the build was cancelled): nothing to say.
                Err(_) => Err(Error::knock_on(ErrorKind::Cancelled, "stopped before its end")),
            };
            match &outcome {
                Ok(o) => {
                    let state = match o {
                        Outcome::Present => LayerState::Skipped,
                        Outcome::Mounted(from) => LayerState::Mounted { from: from.clone() },
                        Outcome::Uploaded => LayerState::Uploaded,
                    };
                    self.progress.set(self.index, state);
                }
                Err(e) if !e.knock_on => {
                    self.failure.lock().unwrap().get_or_insert_with(|| e.clone());
                }
                Err(_) => {}
            }
            self.result.set_outcome(outcome);
            return;
        }
    }

    /// Sends `chunk` with a `PATCH`, resuming after a failure where the
    /// registry says it stands.
    fn send_chunk(&mut self, chunk: &[u8]) -> Result<()> {
        let client = Arc::clone(&self.client);
        if self.location.is_none() {
            self.location = Some(start(&client, &self.what)?);
            self.progress.set(self.index, LayerState::Uploading { sent: 0 });
        }
        let mut from = 0usize;
        let mut resumes = 0;
        loop {
            let location = self.location.clone().expect("started");
            let first = self.sent + from as u64;
            let last = self.sent + chunk.len() as u64 - 1;
            let what = format!("{}: PATCH bytes {first}-{last}", self.what);
            let request = Request::new("PATCH", location)
                .header("content-type", "application/octet-stream")
                .header("content-range", format!("{first}-{last}"))
                .body(&chunk[from..]);
            match client.send(request, &what) {
                Ok(r) if r.status == 202 => {
                    self.location = Some(location_of(&client, &r, &what)?);
                    self.sent = last + 1;
                    self.progress.set(self.index, LayerState::Uploading { sent: self.sent });
                    return Ok(());
                }
                Ok(r) if r.status == 401 || r.status == 403 => return Err(client.unauthorized(&what, &r)),
                Ok(r) if r.status != 416 => return Err(client.error(&what, &r, "")),
                // 416: the registry holds another length; or no answer
                // after the tries: ask it where it stands.
                result => {
                    resumes += 1;
                    if resumes > 3 {
                        return Err(match result {
                            Ok(r) => client.error(&what, &r, "the upload could not be resumed"),
                            Err(e) => e,
                        });
                    }
                    let held = self.held().map_err(|e| {
                        // Say the PATCH's own failure too.
                        let prefix = format!("{}: ", client.where_());
                        let first = match &result {
                            Ok(r) => format!("{what}: HTTP {}", r.status),
                            Err(first) => first.message.strip_prefix(&prefix).unwrap_or(&first.message).to_string(),
                        };
                        Error::new(e.kind, format!("{}; before that, {first}", e.message))
                    })?;
                    if held < self.sent || held > last + 1 {
                        return Err(Error::new(
                            ErrorKind::Output,
                            format!(
                                "registry {}, repository {}: {}: the upload broke off and the registry holds {held} bytes \
                                 of it where {}-{} were being sent; it cannot be resumed (push again)",
                                client.registry, client.repository, self.what, self.sent, last
                            ),
                        ));
                    }
                    from = (held - self.sent) as usize;
                    if held == last + 1 {
                        self.sent = held;
                        return Ok(());
                    }
                }
            }
        }
    }

    /// How many bytes the registry holds of this upload (`GET LOCATION`).
    fn held(&mut self) -> Result<u64> {
        let client = Arc::clone(&self.client);
        let what = format!("{}: upload status", self.what);
        let location = self.location.clone().expect("started");
        let r = client.send(Request::new("GET", location), &what)?;
        if r.status != 204 && r.status != 200 {
            return Err(client.error(&what, &r, "the upload could not be resumed"));
        }
        if let Some(l) = &r.location {
            self.location = Some(client.absolute(l));
        }
        // `Range: 0-LAST`; none, or `0-0` with nothing, is an empty upload.
        let held = r
            .range
            .as_deref()
            .and_then(|range| range.trim().strip_prefix("bytes=").or(Some(range.trim())).and_then(|r| r.split_once('-')))
            .and_then(|(_, last)| last.parse::<u64>().ok())
            .map(|last| last + 1)
            .unwrap_or(0);
        Ok(if held == 1 && self.sent == 0 { 0 } else { held })
    }

    /// Ends the upload with `rest`; a blob that fit in one chunk is looked
    /// up, mounted or uploaded whole.
    fn complete(&mut self, rest: &[u8], digest: &str) -> Result<Outcome> {
        let client = Arc::clone(&self.client);
        match self.location.clone() {
            // Whole in memory: its digest came before any byte was sent.
            None => {
                let hint = self.mount_hints.iter().find(|(d, _)| d == digest).map(|(_, r)| r.as_str());
                put_whole(&client, rest, digest, hint, &self.what)
            }
            Some(location) => {
                finish(&client, &location, rest, digest, &self.what)?;
                Ok(Outcome::Uploaded)
            }
        }
    }
}

fn location_of(client: &Client, r: &Response, what: &str) -> Result<String> {
    location(client, r, what)
}

impl Write for Upload {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let take = buf.len().min(CHUNK_SIZE - self.chunk.len());
        self.chunk.extend_from_slice(&buf[..take]);
        self.hasher.update(&buf[..take]);
        self.size += take as u64;
        if self.chunk.len() == CHUNK_SIZE {
            // Handed over once the chunk before is sent (and given back).
            let full = std::mem::take(&mut self.chunk);
            self.give(Piece::Chunk(full))?;
            self.chunk = take_chunk();
        }
        Ok(take)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink for Upload {
    /// Hands the end to the upload's thread and returns: the digest and
    /// size are known now ([`UploadResult::blob`]), the outcome later
    /// ([`UploadResult::wait`]).
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        let digest = format!("sha256:{}", hex::encode(std::mem::take(&mut self.hasher).finalize()));
        *self.result.blob.lock().unwrap() = Some((digest.clone(), self.size));
        let rest = std::mem::take(&mut self.chunk);
        self.give(Piece::End(rest, digest))
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        // Never started: nothing was sent, and the permit goes with it.
        if self.sender.is_some() && self.result.outcome.lock().unwrap().is_none() {
            self.result.set_outcome(Err(Error::knock_on(ErrorKind::Cancelled, "stopped before its end")));
        }
    }
}
