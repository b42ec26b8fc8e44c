//! The image packaged as OCI: each layer a blob of its own, compressed on
//! its own (`-C none|gzip|zstd`: media types `…layer.v1.tar`,
//! `…tar+gzip`, `…tar+zstd`), the config, the manifest and an index entry
//! naming the image.
//!
//! Both are [`Packaging`]s of [`crate::archive`]: each layer, produced
//! once, goes to a stream of its own ([`LayerTarget::Own`]) that
//! compresses it into its blob.
//!
//! - `oci:DIR[:REF]` ([`LayoutPackaging`], [`layout`]): blobs and
//!   `index.json` in a directory, added to an existing layout.  Layers are
//!   produced side by side, the largest first, each with its share of the
//!   compressing threads.
//! - `oci-archive:FILE[:REF]` ([`tarball`]): the same layout as one tar
//!   file.  A blob's size is known only at its end, so its tar header is
//!   written after it, into the block left for it; layers are produced one
//!   after the other, each compressed on all cores.
//!
//! `diff_ids` are the hashes of the uncompressed tars (the layer is hashed
//! as it is produced, before compression).  Compressed bytes do not depend
//! on the number of threads.

pub mod artifact;
pub mod blob;
pub mod documents;
pub mod layout;
pub mod tarball;

use std::path::Path;
use std::sync::{Mutex, OnceLock};

use crate::archive::packaging::{LayerTarget, Packaging, ProducedLayer, Schedule, Tail};
use crate::archive::{self, Plan};
use crate::destination::Destination;
use crate::error::{Error, Result};
use crate::options::{Compression, ImageOptions, Platform};
use blob::{Compressor, Seen};
use documents::Descriptor;

/// One image to write: its plan, the main item's name without its hash
/// (`hello-2.12`), the options it is built with (its platform), and its
/// SBOMs, if any.
#[derive(Clone, Copy)]
pub struct Image<'a> {
    pub plan: &'a Plan,
    pub main_name: &'a str,
    pub options: &'a ImageOptions,
    pub sbom: Option<&'a crate::sbom::Job>,
}

/// What the index entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The one image's manifest, with its platform.
    Manifest,
    /// An image index (a blob) of the images' manifests, each with its
    /// platform: a multi-platform image.
    PlatformIndex,
}

/// Writes the image of `plan` to `destination`, an OCI one; `main_name`
/// is the main item's name without its hash (`hello-2.12`).
pub fn write_image(
    plan: &Plan,
    main_name: &str,
    destination: &Destination,
    options: &ImageOptions,
    sbom: Option<&crate::sbom::Job>,
) -> Result<()> {
    write_images(&[Image { plan, main_name, options, sbom }], Shape::Manifest, destination)
}

/// Writes `images` to `destination`, an OCI one, under one index entry
/// (its ref and names from the first image's): for [`Shape::Manifest`],
/// the one image's manifest; for [`Shape::PlatformIndex`], an image index
/// of them all.  A blob the images share is stored once.  Each image's
/// SBOMs go in as artifacts whose subject is its manifest.
pub fn write_images(images: &[Image], shape: Shape, destination: &Destination) -> Result<()> {
    assert!(!images.is_empty() && (shape == Shape::PlatformIndex || images.len() == 1), "one image per manifest entry");
    let first = images[0];
    let cancelled = || first.options.cancel.as_deref().is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed));
    match destination {
        Destination::OciLayout { dir, reference } => {
            let shown = format!("oci:{}", dir.display());
            let mut layout = layout::Layout::open(dir, &shown, first.options.cancel.as_deref())?;
            let reference = reference_of(first.plan, reference.as_deref());
            let mut manifests = Vec::with_capacity(images.len());
            for image in images {
                let packaging = LayoutPackaging::new(image.plan, image.main_name, image.options, &layout, dir);
                archive::produce(image.plan, &packaging, image.options)?;
                let manifest = packaging.manifest.lock().unwrap().take().expect("the tail writes the manifest");
                manifests.push((manifest, image.options.platform()));
            }
            let entry = named_entry(first.plan, &manifests, shape, reference, |bytes| {
                layout.write_blob(documents::INDEX_MEDIA_TYPE, bytes)
            })?;
            let subjects: Vec<_> = manifests.iter().zip(images).map(|((d, _), image)| (d.clone(), image.sbom)).collect();
            let mut sbom_files = artifact::attach_to_layout(&mut layout, &subjects, reference)?;
            if cancelled() {
                return Err(Error::cancelled());
            }
            sbom_files.commit()?;
            layout.commit(entry, reference)?;
            sbom_files.keep();
            Ok(())
        }
        Destination::OciArchive { reference, .. } => tarball::write(
            images,
            shape,
            &destination.output().expect("an oci-archive has an output"),
            reference.as_deref(),
        ),
        Destination::DockerArchive(_) | Destination::Registry(_) => {
            Err(Error::invalid_argument("not an OCI layout or archive destination"))
        }
    }
}

/// The index entry naming the image `reference`: the manifest of
/// `manifests` (one) with its platform, or, for a platform index, the
/// index of them all, a blob given to `put_blob`.
pub(crate) fn named_entry(
    plan: &Plan,
    manifests: &[(Descriptor, &'static Platform)],
    shape: Shape,
    reference: &str,
    mut put_blob: impl FnMut(&[u8]) -> Result<Descriptor>,
) -> Result<serde_json::Value> {
    let full = documents::full_name(&plan.image.tags[0]);
    Ok(match shape {
        Shape::Manifest => documents::index_entry(&manifests[0].0, Some(manifests[0].1), reference, &full),
        Shape::PlatformIndex => {
            let index = put_blob(&documents::platform_index(manifests))?;
            documents::index_entry(&index, None, reference, &full)
        }
    })
}

/// The ref name in the index: the one asked for, else the first tag.
pub(crate) fn reference_of<'a>(plan: &'a Plan, asked: Option<&'a str>) -> &'a str {
    asked.unwrap_or(&plan.image.tags[0])
}

/// The config and the manifest of `plan`'s image, whose
/// layers turned out as `layers` (blobs) and `produced` (diff_ids).
pub struct ImageDocuments {
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
}

impl ImageDocuments {
    pub fn new(plan: &Plan, main_name: &str, options: &ImageOptions, layers: &[Descriptor], produced: &[ProducedLayer]) -> ImageDocuments {
        let config = plan.config(produced, options);
        let config_descriptor = Descriptor::of(documents::CONFIG_MEDIA_TYPE, &config);
        let manifest = documents::manifest(&config_descriptor, layers, plan.image.created, main_name);
        ImageDocuments { config, manifest }
    }
}

/// How layers are compressed, each on its own, with `producers` layers
/// produced at once.
pub(crate) fn compressor(options: &ImageOptions, producers: usize) -> Compressor {
    Compressor {
        kind: options.compression,
        level: options.effective_compression_level(),
        threads: (options.worker_threads() / producers.max(1)).max(1),
    }
}

/// The image layout packaging: each layer into a temporary file of the
/// layout, named by its digest once whole; the config and manifest blobs
/// and the index entry at the end.
struct LayoutPackaging<'p> {
    plan: &'p Plan,
    main_name: &'p str,
    options: &'p ImageOptions,
    layout: &'p layout::Layout,
    dir: &'p Path,
    compressor: Compressor,
    /// Each layer's temporary blob file, from its target on.
    temps: Vec<OnceLock<layout::TempBlob>>,
    /// Compressed, each layer's stream's digest and size, until it is
    /// whole (uncompressed, they are the layer's).
    seen: Mutex<Vec<Option<Seen>>>,
    /// Each layer's blob, once whole.
    blobs: Mutex<Vec<Option<Descriptor>>>,
    /// The manifest's descriptor, once the tail has written it.
    manifest: Mutex<Option<Descriptor>>,
}

impl<'p> LayoutPackaging<'p> {
    fn new(
        plan: &'p Plan,
        main_name: &'p str,
        options: &'p ImageOptions,
        layout: &'p layout::Layout,
        dir: &'p Path,
    ) -> Self {
        let n = plan.layers.len();
        // As many layers at once as archive::produce runs producers.
        let producers = options.worker_threads().min(n).max(1);
        LayoutPackaging {
            plan,
            main_name,
            options,
            layout,
            dir,
            compressor: compressor(options, producers),
            temps: (0..n).map(|_| OnceLock::new()).collect(),
            seen: Mutex::new(vec![None; n]),
            blobs: Mutex::new(vec![None; n]),
            manifest: Mutex::new(None),
        }
    }
}

impl Packaging for LayoutPackaging<'_> {
    fn schedule(&self) -> Result<Schedule> {
        Ok(Schedule::Parallel)
    }

    fn layer_target(&self, index: usize) -> Result<LayerTarget<'_>> {
        let slot = &self.temps[index];
        assert!(slot.set(self.layout.temp_blob()?).is_ok(), "one target per layer");
        let temp = slot.get().expect("just set");
        if self.options.compression == Compression::None {
            // The blob is the layer: written in place by its producer (as a
            // docker-archive's layer is), its digest is the diff_id.
            return Ok(LayerTarget::File { file: &temp.file, name: &temp.path, offset: 0, prefix: &[] });
        }
        let file = temp.file.try_clone().map_err(|e| Error::output(self.dir, &e))?;
        let (stream, seen) = blob::blob_stream(file, 0, self.compressor, self.dir)?;
        self.seen.lock().unwrap()[index] = Some(seen);
        Ok(LayerTarget::Own(stream))
    }

    /// A layer whose blob the cache knows and the layout has (of the
    /// size the cache says) is not produced again.  The blob's bytes are
    /// not read back: a layout's blob is trusted to be what its name says,
    /// as when a blob already there is not rewritten.
    fn reuse(&self, index: usize) -> Result<Option<ProducedLayer>> {
        let cache = &self.plan.cache;
        let (Some(diff_id), Some(blob)) = (cache.diff_id(index), cache.blob(index, self.compressor.kind, self.compressor.level))
        else {
            return Ok(None);
        };
        let hex = hex::encode(blob.digest);
        if !self.layout.has_blob(&hex, blob.size) {
            return Ok(None);
        }
        let media_type = blob::layer_media_type(self.options.compression).to_string();
        self.blobs.lock().unwrap()[index] = Some(Descriptor { media_type, digest: format!("sha256:{hex}"), size: blob.size });
        Ok(Some(ProducedLayer { diff_id, len: self.plan.layers[index].len }))
    }

    fn layer_done(&self, index: usize, layer: &ProducedLayer) -> Result<()> {
        let temp = self.temps[index].get().expect("a layer's target comes first");
        let (digest, size) = match self.seen.lock().unwrap()[index].take() {
            Some(seen) => seen.get().expect("the layer's stream is finished"),
            None => (layer.diff_id, layer.len),
        };
        self.plan.cache.learn_blob(index, self.compressor.kind, self.compressor.level, &digest, size);
        let hex = hex::encode(digest);
        self.layout.install(temp, &hex)?;
        let media_type = blob::layer_media_type(self.options.compression).to_string();
        self.blobs.lock().unwrap()[index] = Some(Descriptor { media_type, digest: format!("sha256:{hex}"), size });
        Ok(())
    }

    fn total_len(&self) -> u64 {
        self.plan.layers.iter().map(|l| l.len).sum()
    }

    fn write_tail<'a>(&'a self, layers: &[ProducedLayer], _tail: &Tail<'_, 'a>) -> Result<()> {
        let blobs: Vec<Descriptor> =
            self.blobs.lock().unwrap().iter().map(|b| b.clone().expect("every layer is whole")).collect();
        let docs = ImageDocuments::new(self.plan, self.main_name, self.options, &blobs, layers);
        self.layout.write_blob(documents::CONFIG_MEDIA_TYPE, &docs.config)?;
        let manifest = self.layout.write_blob(documents::MANIFEST_MEDIA_TYPE, &docs.manifest)?;
        *self.manifest.lock().unwrap() = Some(manifest);
        Ok(())
    }
}
