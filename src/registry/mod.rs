//! Pushing an image to a registry (`docker://HOST[:PORT]/REPOSITORY[:TAG]`)
//! over the OCI distribution protocol, straight from the store: each layer
//! is produced once (read, hashed for its `diff_id`), compressed on its own
//! and uploaded as it is made, never whole in memory and never in a
//! temporary file; then the config; the manifest last, by its digest, then
//! under each tag ([`tags`]), so that a tag never names an image whose
//! blobs are missing.
//!
//! What is skipped.  A blob is looked up (`HEAD`) when its digest is known
//! before its bytes are sent: the config always; a layer the layer cache
//! knows, before it is produced ([`Packaging::reuse`]: a blob the
//! repository has, or mounts from another repository the cache names, is
//! not produced at all); and a layer that ends within its first chunk
//! ([`blobs::CHUNK_SIZE`], 8 MiB compressed), which is held in memory until
//! its end.  Any other layer's digest is known only once it has been made,
//! and its bytes have gone up by then.  Blobs known to be in another
//! repository of the registry ([`ImageOptions::add_mount_hint`], and the
//! cache's locations) are mounted from there (`POST …?mount=…&from=…`),
//! falling back to an upload when the registry declines (202).  After a
//! push the cache learns each layer's blob and that the repository holds it.
//!
//! The parts: [`client`] (requests, authentication, retries, errors),
//! [`blobs`] (lookups, mounts, uploads), [`tags`] (the manifest and its
//! tags, as nearly all-or-nothing as the protocol allows), [`referrers`]
//! (SBOMs pushed as artifacts about the image), [`tls`] (certificates),
//! [`options`] (what a push can be told), [`credentials`] (where
//! credentials come from; secrets that never show).

pub mod blobs;
pub mod client;
pub(crate) mod credentials;
pub mod options;
pub mod referrers;
pub mod tags;
pub mod tls;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use serde_json::json;

use crate::archive::packaging::{LayerTarget, Packaging, ProducedLayer, Schedule, Stream, Tail};
use crate::archive::{self, Plan};
use crate::config::{self, LayerInfo};
use crate::destination::RegistryReference;
use crate::error::{Error, ErrorKind, Result};
use crate::oci::documents::{self, Descriptor};
use crate::options::{Compression, ImageOptions};
use blobs::{Outcome, Upload, UploadResult};
use client::Client;
pub use options::{LayerReport, LayerState, ManifestFormat, PushProgressFn, PushReport, RegistryOptions};
use credentials::Credentials;

/// Docker schema 2 media types.
pub const DOCKER_MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_CONFIG_MEDIA_TYPE: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const DOCKER_LIST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// One platform's image of a multi-platform push.
pub struct PlatformImage<'a> {
    pub plan: &'a Plan,
    pub main_name: &'a str,
    /// Its options (its platform's architecture among them).
    pub options: &'a ImageOptions,
}

/// Pushes the image of `plan` to `reference`; `main_name` is the main
/// item's name without its hash.
pub fn push(plan: &Plan, main_name: &str, reference: &RegistryReference, options: &ImageOptions) -> Result<()> {
    push_images(&[PlatformImage { plan, main_name, options }], false, reference, options, None).map(drop)
}

/// Pushes a multi-platform image: each platform's image (its blobs, then
/// its manifest, by digest), then the image index naming them, under the
/// tags.
pub fn push_index(images: &[PlatformImage], reference: &RegistryReference, options: &ImageOptions) -> Result<()> {
    push_images(images, true, reference, options, None).map(drop)
}

/// What is pushed once every image manifest is up, by its digest, and
/// before any tag moves (the SBOM artifacts, see [`referrers`]): given the
/// client and each image's manifest, in the order of the images.
pub(crate) type BeforeTags<'a> = &'a dyn Fn(&Client, &[Descriptor]) -> Result<()>;

/// Pushes `images` (one, or, with `index`, a multi-platform image), then
/// `before_tags`, then the tags; returns each image's manifest.
fn push_images(
    images: &[PlatformImage],
    index: bool,
    reference: &RegistryReference,
    options: &ImageOptions,
    before_tags: Option<BeforeTags>,
) -> Result<Vec<Descriptor>> {
    // The spare chunk buffers are freed when the push ends, however it ends.
    struct ReleaseChunks;
    impl Drop for ReleaseChunks {
        fn drop(&mut self) {
            blobs::release_chunks();
        }
    }
    let _release = ReleaseChunks;
    let ro = &options.registry;
    if ro.manifest_format == ManifestFormat::Docker && options.compression == Compression::Zstd {
        return Err(Error::invalid_argument(
            "manifest format docker: Docker's schema 2 has no zstd layers; give -C gzip (or none), or the OCI manifest format",
        ));
    }
    let tags = tags_of(reference, &options.tags);
    let tls = tls::config(ro.cert_dir.as_deref(), ro.tls_verify())?;
    let (credentials, origin) = credentials_for(reference, ro)?;
    // The repositories blobs may be mounted from (their pull scope is asked
    // for with a token): the hints given, and those the layer cache knows.
    let mut mount_sources: Vec<String> = Vec::new();
    let cached = images.iter().flat_map(|i| cached_locations(i.plan, i.options, reference));
    for repository in ro.mount_hints.iter().map(|(_, r)| r.clone()).chain(cached) {
        if repository != reference.repository && !mount_sources.contains(&repository) {
            mount_sources.push(repository);
        }
    }
    let hints: Arc<Vec<(String, String)>> =
        Arc::new(ro.mount_hints.iter().filter(|(_, r)| r != &reference.repository).cloned().collect());
    let client = Arc::new(Client::connect(
        reference,
        credentials,
        origin,
        tls,
        ro.tls_verify(),
        mount_sources,
        options.cancel.clone(),
    )?);
    let layers: usize = images.iter().map(|i| i.plan.layers.len()).sum();
    let progress = Arc::new(Progress::new(client.shown(), layers, ro.push_progress.clone()));
    let mut manifests = Vec::with_capacity(images.len());
    let mut offset = 0;
    for image in images {
        let label = if index {
            let p = image.options.platform();
            let name = match p.variant {
                Some(v) => format!("linux/{}/{v}", p.architecture),
                None => format!("linux/{}", p.architecture),
            };
            format!("{name} ")
        } else {
            String::new()
        };
        let packaging = PushPackaging::new(
            image.plan,
            image.main_name,
            image.options,
            Arc::clone(&client),
            Arc::clone(&hints),
            Arc::clone(&progress),
            offset,
            label,
        );
        offset += image.plan.layers.len();
        // The engine's progress calls also report the push's.
        let mut producing = image.options.clone();
        let user_progress = image.options.progress.clone();
        let reporting = Arc::clone(&progress);
        producing.progress = Some(Arc::new(move |p| {
            if let Some(user) = &user_progress {
                user(p);
            }
            reporting.report();
        }));
        if let Err(e) = archive::produce(image.plan, &packaging, &producing) {
            progress.report();
            // The registry's own error, not the stream's echo of it.
            return Err(packaging.failure.lock().unwrap().take().filter(|_| e.kind != ErrorKind::Cancelled).unwrap_or(e));
        }
        let (manifest, media_type) = packaging.manifest.lock().unwrap().take().expect("the tail made the manifest");
        manifests.push((manifest, media_type, image.options.platform()));
    }
    if options.cancel.as_deref().is_some_and(|c| c.load(Ordering::Relaxed)) {
        return Err(Error::cancelled());
    }
    let pushed: Vec<Descriptor>;
    let (document, media_type) = if index {
        // Each manifest by its digest first: the index names them.
        let mut entries = Vec::with_capacity(manifests.len());
        for (manifest, media_type, platform) in &manifests {
            let descriptor = Descriptor::of(media_type, manifest);
            tags::put_manifest(&client, manifest, media_type, &descriptor.digest)?;
            entries.push((descriptor, *platform));
        }
        pushed = entries.iter().map(|(d, _)| d.clone()).collect();
        if let Some(before_tags) = before_tags {
            before_tags(&client, &pushed)?;
        }
        if ro.manifest_format == ManifestFormat::Docker {
            let list: Vec<serde_json::Value> = entries
                .iter()
                .map(|(d, p)| {
                    json!({"mediaType": d.media_type, "digest": d.digest, "size": d.size, "platform": documents::platform(p)})
                })
                .collect();
            let value = json!({ "schemaVersion": 2, "mediaType": DOCKER_LIST_MEDIA_TYPE, "manifests": list });
            (serde_json::to_vec(&value).expect("JSON of strings"), DOCKER_LIST_MEDIA_TYPE)
        } else {
            (documents::platform_index(&entries), documents::INDEX_MEDIA_TYPE)
        }
    } else {
        let (manifest, media_type, _) = manifests.pop().expect("one image");
        let descriptor = Descriptor::of(media_type, &manifest);
        // By its digest first: the image is whole in the repository before
        // any tag names it, and what goes before the tags can name it.
        tags::put_manifest(&client, &manifest, media_type, &descriptor.digest)?;
        if let Some(before_tags) = before_tags {
            before_tags(&client, std::slice::from_ref(&descriptor))?;
        }
        pushed = vec![descriptor];
        (manifest, media_type)
    };
    // The index by its digest too; then the tags (see [`tags`]).
    let digest = documents::digest_of(&document);
    if index {
        tags::put_manifest(&client, &document, media_type, &digest)?;
    }
    tags::move_tags(&client, &document, media_type, &digest, &tags)?;
    progress.update(|r| r.manifest = Some((digest.clone(), tags.clone())));
    progress.report();
    Ok(pushed)
}

/// The repositories of `reference`'s registry that the layer cache says
/// hold one of `plan`'s layer blobs as `options` compress them.
fn cached_locations(plan: &Plan, options: &ImageOptions, reference: &RegistryReference) -> Vec<String> {
    let c = crate::oci::compressor(options, 1);
    let mut out = Vec::new();
    for index in 0..plan.layers.len() {
        let Some(known) = plan.cache.known(index) else { continue };
        let Some(blob) = plan.cache.blob(index, c.kind, c.level) else { continue };
        out.extend(known.locations_in(&blob.digest, &reference.registry).map(String::from));
    }
    out
}

/// The tags pushed: the destination's, then each `-t`'s tag part, once
/// each; `latest` when there is none.
pub fn tags_of(reference: &RegistryReference, tags: &[String]) -> Vec<String> {
    let mut out: Vec<String> = reference.tag.iter().cloned().collect();
    for tag in tags {
        let (_, t) = crate::reference::split_tag(tag);
        let t = t.unwrap_or("latest").to_string();
        if !out.contains(&t) {
            out.push(t);
        }
    }
    if out.is_empty() {
        out.push("latest".into());
    }
    out
}

/// The credentials for `reference`, and where they came from or where
/// they were looked for (said in a 401's error): those given
/// (`--creds`), else those the auth files and credential helpers hold
/// ([`credentials::lookup`]).
fn credentials_for(reference: &RegistryReference, ro: &RegistryOptions) -> Result<(Option<Credentials>, String)> {
    if let Some(c) = &ro.credentials {
        return Ok((Some(c.clone()), "(given with --creds)".into()));
    }
    let found = credentials::lookup(&reference.registry, None)?;
    let origin = match &found.found_in {
        Some(place) => format!("(from {place})"),
        None if found.credentials.is_some() => format!("(found in {})", found.searched_places()),
        None => found.no_credentials_message(&reference.registry),
    };
    Ok((found.credentials, origin))
}

/// A push's report, shared by its uploads, and the callback that hears of it.
pub struct Progress {
    report: Mutex<PushReport>,
    callback: Option<PushProgressFn>,
}

impl Progress {
    fn new(repository: String, layers: usize, callback: Option<PushProgressFn>) -> Progress {
        let layer = LayerReport { state: LayerState::Waiting, digest: None, size: None };
        let report = PushReport { repository, layers: vec![layer; layers], config_present: None, manifest: None };
        Progress { report: Mutex::new(report), callback }
    }

    /// Layer `index` is now `state`.
    pub fn set(&self, index: usize, state: LayerState) {
        self.update(|r| r.layers[index].state = state);
    }

    fn update(&self, f: impl FnOnce(&mut PushReport)) {
        f(&mut self.report.lock().unwrap());
    }

    /// Tells the callback (on the calling thread of the build).
    fn report(&self) {
        if let Some(callback) = &self.callback {
            let snapshot = self.report.lock().unwrap().clone();
            callback(&snapshot);
        }
    }
}

/// Layers uploading at once, at most `--jobs`.
struct Jobs {
    running: Mutex<usize>,
    freed: Condvar,
    max: usize,
}

/// A place among the uploads running; freed when dropped.
pub struct Permit(Arc<Jobs>);

impl Drop for Permit {
    fn drop(&mut self) {
        *self.0.running.lock().unwrap() -= 1;
        self.0.freed.notify_one();
    }
}

/// The push as a [`Packaging`]: each layer to its own stream, compressed
/// into an [`Upload`]; the config and the manifest made in the tail.
struct PushPackaging<'p> {
    plan: &'p Plan,
    main_name: &'p str,
    options: &'p ImageOptions,
    client: Arc<Client>,
    hints: Arc<Vec<(String, String)>>,
    progress: Arc<Progress>,
    compressor: crate::oci::blob::Compressor,
    jobs: Arc<Jobs>,
    results: Vec<Arc<UploadResult>>,
    blobs: Mutex<Vec<Option<Descriptor>>>,
    failure: Arc<Mutex<Option<Error>>>,
    /// The manifest and its media type, made by the tail.
    manifest: Mutex<Option<(Vec<u8>, &'static str)>>,
    /// This image's first layer's line in the report (a multi-platform
    /// push reports every image's layers).
    offset: usize,
    /// `linux/arm64/v8 ` in a multi-platform push, for messages.
    label: String,
    /// For each layer whose blob the cache knows, whether the repository
    /// has it ([`PushPackaging::lookups`]).
    lookups: OnceLock<Result<Vec<Option<bool>>>>,
}

impl<'p> PushPackaging<'p> {
    fn new(
        plan: &'p Plan,
        main_name: &'p str,
        options: &'p ImageOptions,
        client: Arc<Client>,
        hints: Arc<Vec<(String, String)>>,
        progress: Arc<Progress>,
        offset: usize,
        label: String,
    ) -> Self {
        let n = plan.layers.len();
        let jobs = options.registry.jobs();
        let producers = options.worker_threads().min(n).min(jobs).max(1);
        PushPackaging {
            plan,
            main_name,
            options,
            client,
            hints,
            progress,
            compressor: crate::oci::compressor(options, producers),
            jobs: Arc::new(Jobs { running: Mutex::new(0), freed: Condvar::new(), max: jobs }),
            results: (0..n).map(|_| Arc::default()).collect(),
            blobs: Mutex::new(vec![None; n]),
            failure: Arc::default(),
            manifest: Mutex::new(None),
            offset,
            label,
            lookups: OnceLock::new(),
        }
    }

    /// The image's config (and its descriptor) and its manifest (and the
    /// manifest's media type), given each layer's `diff_id` and blob.
    fn documents(&self, diff_ids: &[[u8; 32]], blobs: &[Descriptor]) -> (Vec<u8>, Descriptor, (Vec<u8>, &'static str)) {
        let infos: Vec<LayerInfo> = diff_ids
            .iter()
            .zip(&self.plan.layers)
            .map(|(diff_id, layer)| LayerInfo {
                file: String::new(),
                diff_id: format!("sha256:{}", hex::encode(diff_id)),
                comment: layer.comment.clone(),
            })
            .collect();
        let image = &self.plan.image;
        let config = config::image_config(self.options, &image.entry_point, image.created, &infos);
        let docker = self.options.registry.manifest_format == ManifestFormat::Docker;
        let config_type = if docker { DOCKER_CONFIG_MEDIA_TYPE } else { documents::CONFIG_MEDIA_TYPE };
        let config_descriptor = Descriptor::of(config_type, &config);
        let manifest = if docker {
            let descriptor = |d: &Descriptor| json!({ "mediaType": d.media_type, "digest": d.digest, "size": d.size });
            let value = json!({
                "schemaVersion": 2,
                "mediaType": DOCKER_MANIFEST_MEDIA_TYPE,
                "config": descriptor(&config_descriptor),
                "layers": blobs.iter().map(descriptor).collect::<Vec<_>>(),
            });
            (serde_json::to_vec(&value).expect("JSON of strings"), DOCKER_MANIFEST_MEDIA_TYPE)
        } else {
            (documents::manifest(&config_descriptor, blobs, image.created, self.main_name), documents::MANIFEST_MEDIA_TYPE)
        };
        (config, config_descriptor, manifest)
    }

    /// Whether the repository holds the manifest this push would make
    /// when the cache knows every layer: then it holds every blob that
    /// manifest names (a registry accepts a manifest only once its blobs
    /// are in the repository, and keeps the blobs a manifest names), and
    /// none needs looking up.  `false` when some layer is unknown.
    fn manifest_present(&self) -> Result<bool> {
        let n = self.plan.layers.len();
        let mut diff_ids = Vec::with_capacity(n);
        let mut blobs = Vec::with_capacity(n);
        for index in 0..n {
            let c = self.compressor;
            let (Some(diff_id), Some(blob)) = (self.plan.cache.diff_id(index), self.plan.cache.blob(index, c.kind, c.level)) else {
                return Ok(false);
            };
            diff_ids.push(diff_id);
            let digest = format!("sha256:{}", hex::encode(blob.digest));
            blobs.push(Descriptor { media_type: self.layer_media_type().into(), digest, size: blob.size });
        }
        let (_, _, (manifest, media_type)) = self.documents(&diff_ids, &blobs);
        let digest = Descriptor::of(media_type, &manifest).digest;
        tags::manifest_exists(&self.client, &digest, &format!("{}the manifest", self.label))
    }

    /// The digest of layer `index`'s blob, when the cache knows it and its
    /// `diff_id` (a layer that may be reused).
    fn cached_digest(&self, index: usize) -> Option<String> {
        let c = self.compressor;
        self.plan.cache.diff_id(index)?;
        let blob = self.plan.cache.blob(index, c.kind, c.level)?;
        Some(format!("sha256:{}", hex::encode(blob.digest)))
    }

    /// For each layer whose blob the cache knows, whether the repository
    /// has it: looked up once, when the first layer asks.  When the
    /// repository holds the very manifest this push makes, it has them all
    /// ([`PushPackaging::manifest_present`]: one request); else each blob
    /// is looked up, `--jobs` requests at a time, so that the answers are
    /// waited for side by side rather than one by one.
    fn lookups(&self) -> Result<&[Option<bool>]> {
        let found = self.lookups.get_or_init(|| {
            let digests: Vec<Option<String>> = (0..self.plan.layers.len()).map(|i| self.cached_digest(i)).collect();
            if self.manifest_present()? {
                return Ok(digests.iter().map(|d| d.as_ref().map(|_| true)).collect());
            }
            let wanted: Vec<usize> = (0..digests.len()).filter(|&i| digests[i].is_some()).collect();
            let answers: Vec<Mutex<Option<Result<bool>>>> = digests.iter().map(|_| Mutex::new(None)).collect();
            let next = AtomicUsize::new(0);
            std::thread::scope(|s| {
                for _ in 0..self.jobs.max.min(wanted.len()) {
                    s.spawn(|| loop {
                        let Some(&i) = wanted.get(next.fetch_add(1, Ordering::Relaxed)) else { return };
                        let digest = digests[i].as_deref().expect("wanted");
                        let what = format!("{}layer {}", self.label, i + 1);
                        let answer = blobs::exists(&self.client, digest, &what);
                        let failed = answer.is_err();
                        *answers[i].lock().unwrap() = Some(answer);
                        if failed {
                            next.store(wanted.len(), Ordering::Relaxed);
                        }
                    });
                }
            });
            answers.into_iter().map(|a| a.into_inner().unwrap().transpose()).collect()
        });
        found.as_deref().map_err(Clone::clone)
    }

    /// Waits for a place among the uploads.
    fn permit(&self) -> Result<Permit> {
        let mut running = self.jobs.running.lock().unwrap();
        while *running >= self.jobs.max {
            if self.options.cancel.as_deref().is_some_and(|c| c.load(Ordering::Relaxed)) {
                return Err(Error::cancelled());
            }
            if self.failure.lock().unwrap().is_some() {
                return Err(Error::knock_on(ErrorKind::Cancelled, "stopped: another upload failed"));
            }
            running = self.jobs.freed.wait_timeout(running, Duration::from_millis(100)).unwrap().0;
        }
        *running += 1;
        Ok(Permit(Arc::clone(&self.jobs)))
    }

    fn layer_media_type(&self) -> &'static str {
        match (self.options.registry.manifest_format, self.options.compression) {
            (ManifestFormat::Docker, Compression::Gzip) => DOCKER_LAYER_GZIP,
            (ManifestFormat::Docker, _) => DOCKER_LAYER_TAR,
            (ManifestFormat::Oci, c) => crate::oci::blob::layer_media_type(c),
        }
    }
}

impl Packaging for PushPackaging<'_> {
    fn schedule(&self) -> Result<Schedule> {
        Ok(Schedule::Parallel)
    }

    /// A layer the cache knows (its `diff_id`, and its blob as this
    /// build's compressor makes it) is not produced when the repository
    /// has the blob (its `HEAD` answers yes) or mounts it from a repository
    /// of the same registry that the cache says holds it: no file of it is
    /// read.  Otherwise it is produced and uploaded as any other layer.
    fn reuse(&self, index: usize) -> Result<Option<ProducedLayer>> {
        let cache = &self.plan.cache;
        let c = self.compressor;
        let (Some(diff_id), Some(known), Some(blob)) = (cache.diff_id(index), cache.known(index), cache.blob(index, c.kind, c.level))
        else {
            return Ok(None);
        };
        let Some(present) = self.lookups()?[index] else { return Ok(None) };
        let digest = format!("sha256:{}", hex::encode(blob.digest));
        let what = format!("{}layer {}", self.label, index + 1);
        let outcome = if present {
            Outcome::Present
        } else {
            // The places the cache knows, newest first; the hints given by
            // the caller after.
            let known_places = known.locations_in(&blob.digest, &self.client.registry);
            let hinted = self.hints.iter().filter(|(d, _)| *d == digest).map(|(_, r)| r.as_str());
            let mut sources: Vec<&str> = Vec::new();
            for from in known_places.chain(hinted) {
                if from != self.client.repository && !sources.contains(&from) {
                    sources.push(from);
                }
            }
            let mut mounted = None;
            for from in sources.into_iter().take(3) {
                match blobs::mount(&self.client, &digest, from, &what)? {
                    None => {
                        mounted = Some(from.to_string());
                        break;
                    }
                    Some(location) => blobs::abandon(&self.client, &location, &what),
                }
            }
            match mounted {
                Some(from) => Outcome::Mounted(from),
                None => return Ok(None),
            }
        };
        let state = match &outcome {
            Outcome::Mounted(from) => LayerState::Mounted { from: from.clone() },
            _ => LayerState::Skipped,
        };
        self.progress.update(|r| {
            let layer = &mut r.layers[self.offset + index];
            layer.state = state;
            layer.digest = Some(digest.clone());
            layer.size = Some(blob.size);
        });
        self.results[index].settle(digest.clone(), blob.size, outcome);
        self.blobs.lock().unwrap()[index] = Some(Descriptor { media_type: self.layer_media_type().into(), digest, size: blob.size });
        Ok(Some(ProducedLayer { diff_id, len: self.plan.layers[index].len }))
    }

    fn layer_target(&self, index: usize) -> Result<LayerTarget<'_>> {
        let permit = self.permit()?;
        self.progress.set(self.offset + index, LayerState::Uploading { sent: 0 });
        let upload = Upload::new(
            Arc::clone(&self.client),
            self.offset + index,
            format!("{}layer {}", self.label, index + 1),
            Arc::clone(&self.hints),
            Arc::clone(&self.progress),
            Arc::clone(&self.results[index]),
            Arc::clone(&self.failure),
            permit,
        );
        let c = self.compressor;
        let name = std::path::PathBuf::from(self.client.shown());
        let sink = crate::compress::compressor(c.kind, c.level, c.threads, Box::new(upload))
            .map_err(|e| Error::new(ErrorKind::Output, format!("{}: {e}", name.display())))?;
        Ok(LayerTarget::Own(Stream { sink, name }))
    }

    /// The layer's stream has ended: its blob's digest and size are
    /// known; its upload may still be finishing on its thread (waited for
    /// in the tail).
    fn layer_done(&self, index: usize, _layer: &ProducedLayer) -> Result<()> {
        let Some((digest, size)) = self.results[index].blob() else {
            // The stream was stopped before its end (another upload failed).
            let failed = self.failure.lock().unwrap().clone();
            return Err(failed.unwrap_or_else(|| Error::knock_on(ErrorKind::Cancelled, "stopped before its end")));
        };
        self.progress.update(|r| {
            let layer = &mut r.layers[self.offset + index];
            layer.digest = Some(digest.clone());
            layer.size = Some(size);
        });
        if let Some(bytes) = digest_bytes(&digest) {
            let c = self.compressor;
            self.plan.cache.learn_blob(index, c.kind, c.level, &bytes, size);
        }
        self.blobs.lock().unwrap()[index] = Some(Descriptor { media_type: self.layer_media_type().into(), digest, size });
        Ok(())
    }

    fn total_len(&self) -> u64 {
        self.plan.layers.iter().map(|l| l.len).sum()
    }

    fn write_tail<'a>(&'a self, layers: &[ProducedLayer], _tail: &Tail<'_, 'a>) -> Result<()> {
        // Every layer's upload done (each thread sets its layer's state),
        // the first real failure said, before the config and the manifest.
        let mut knock_on = None;
        for result in &self.results {
            if let Err(e) = result.wait() {
                if !e.knock_on {
                    return Err(e);
                }
                knock_on.get_or_insert(e);
            }
        }
        if let Some(e) = knock_on {
            return Err(self.failure.lock().unwrap().clone().unwrap_or(e));
        }
        let blobs: Vec<Descriptor> = self.blobs.lock().unwrap().iter().map(|b| b.clone().expect("every layer is up")).collect();
        // Every layer's blob is in the repository now: the cache learns
        // where, for the next push's lookups and mounts.
        for (index, blob) in blobs.iter().enumerate() {
            if let Some(bytes) = digest_bytes(&blob.digest) {
                self.plan.cache.learn_location(index, &bytes, &self.client.registry, &self.client.repository);
            }
        }
        let diff_ids: Vec<[u8; 32]> = layers.iter().map(|l| l.diff_id).collect();
        let (config, config_descriptor, manifest) = self.documents(&diff_ids, &blobs);
        let hint = self.hints.iter().find(|(d, _)| *d == config_descriptor.digest).map(|(_, r)| r.as_str());
        let what = format!("{}the config", self.label);
        let outcome = blobs::put_whole(&self.client, &config, &config_descriptor.digest, hint, &what)?;
        self.progress.update(|r| r.config_present = Some(outcome != Outcome::Uploaded));
        *self.manifest.lock().unwrap() = Some(manifest);
        Ok(())
    }
}

/// The 32 bytes of a `sha256:<hex>` digest.
fn digest_bytes(digest: &str) -> Option<[u8; 32]> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(digest.strip_prefix("sha256:")?, &mut bytes).ok()?;
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(tag: Option<&str>) -> RegistryReference {
        RegistryReference { registry: "localhost:5000".into(), repository: "app".into(), tag: tag.map(String::from) }
    }

    #[test]
    fn tags_pushed() {
        assert_eq!(tags_of(&reference(None), &[]), ["latest"]);
        assert_eq!(tags_of(&reference(Some("1")), &[]), ["1"]);
        let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(tags_of(&reference(Some("1")), &t(&["x:2", "y:1", "localhost:5000/z:3"])), ["1", "2", "3"]);
        assert_eq!(tags_of(&reference(None), &t(&["x:latest"])), ["latest"]);
    }
}
