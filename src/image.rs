//! The whole job: items and options in, an image archive out.
//!
//! 1. Check the items and get their closure.
//! 2. Measure every store item (metadata only): sizes, and every check
//!    that can fail, before the output is touched.
//! 3. Plan the layers: what each holds and its length, so that every
//!    offset is known before writing.
//! 4. Hand the plan to [`crate::archive`], which produces the layers (read,
//!    hash and write each byte once), then the config and manifest, which
//!    need the layers' hashes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::archive::{self, ImageMeta, Layer, Plan};
use crate::closure::{self, Closure};
use crate::destination::Destination as ImageDestination;
use crate::error::{Error, ErrorKind, Result};
use crate::layers::{self, archive_name, Unit};
use crate::localstate::{self, ImageDatabase};
use crate::options::{platform_of_system, ImageOptions, Progress};
use crate::output::{Output, OutputFile};
use crate::reference::repository_from_name;
use crate::sbom;
use crate::store::{StoreDir, StoreItem};

/// Builds the image of `items` (the first is the main item: a relative entry
/// point or symlink target is relative to it).
///
/// `closure`: the closure as the caller knows it (checked), or `None` to
/// compute it (from `options.database`, else by scanning the store).
/// On error nothing is left at the output path.  The progress callback, if
/// any, is called on the calling thread only.
pub fn build_docker_image(
    items: &[PathBuf],
    closure: Option<&[PathBuf]>,
    output: &Output,
    options: &ImageOptions,
) -> Result<()> {
    build_image(items, closure, &ImageDestination::DockerArchive(output.clone()), options)
}

/// As [`build_docker_image`], to any destination (see [`crate::destination`]).
pub fn build_image(
    items: &[PathBuf],
    closure: Option<&[PathBuf]>,
    destination: &ImageDestination,
    options: &ImageOptions,
) -> Result<()> {
    if items.is_empty() {
        return Err(Error::invalid_argument("no store item given"));
    }
    let store = StoreDir::new(&options.store_dir)?;
    let output = destination.output();
    if let Some(output) = &output {
        crate::output::refuse_build_inputs(output, options)?;
    }
    let prepared = prepare(&store, items, closure, options)?;
    let plan = &prepared.plan;
    let pushed_name = pushed_name(destination);
    let mut contents = prepared.sbom_contents();
    if let Some(name) = &pushed_name {
        contents.image_name = name;
    }
    let sbom = sbom::Job::new(&contents, options, destination, None)?;
    // What the build learned is kept once it succeeded.
    let write = || -> Result<()> {
        if let ImageDestination::Registry(reference) = destination {
            let image = crate::registry::PlatformImage { plan, main_name: prepared.main().name(), options };
            return crate::registry::referrers::push_with_sboms(&[image], false, reference, options, &[sbom.as_ref()]);
        }
        if destination.is_oci() {
            return crate::oci::write_image(plan, prepared.main().name(), destination, options, sbom.as_ref());
        }
        let out = OutputFile::open(&output.expect("a docker-archive has an output"))?;
        let image_id = archive::write_docker_archive(plan, &out, options)?;
        // The SBOM files are named just before the image, and removed if it fails.
        let mut sbom_files = sbom::PreparedFiles::write(sbom.as_ref(), &image_id)?;
        sbom_files.commit()?;
        out.commit()?;
        sbom_files.keep();
        Ok(())
    };
    write()?;
    plan.cache.save();
    Ok(())
}

/// The name an image pushed to a registry has there, which its SBOM
/// gives: `REGISTRY/REPOSITORY` (no tag: the same image pushed under
/// other tags has the same SBOM, listed once); `None` for other
/// destinations (their SBOMs name the image by its first tag).
fn pushed_name(destination: &ImageDestination) -> Option<String> {
    let ImageDestination::Registry(reference) = destination else { return None };
    Some(format!("{}/{}", reference.registry, reference.repository))
}

/// One image of a multi-platform image: a store item built for a Guix
/// system (`guix build --system=aarch64-linux`), with its closure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformItem {
    /// The Guix system (`aarch64-linux`) or GNU triplet the item is for.
    pub system: String,
    /// The store item; its image's main item.
    pub item: PathBuf,
    /// Its closure as the caller knows it (checked), or `None` to compute
    /// it (from `options.database`, else by scanning the store).
    pub closure: Option<Vec<PathBuf>>,
}

/// Builds a multi-platform image: one image per [`PlatformItem`], each of
/// its item and closure, with `options` (the same for every platform, but
/// for the system: `options`' own is not used), for its system's platform
/// (its config's `architecture` and `variant`), all under one OCI image
/// index named by the ref of `destination` (default: the first tag).  A
/// blob the images share (a layer of the same bytes) is stored once.
///
/// `destination` is an OCI one; a docker-archive holds one platform only
/// (it has no index), and is refused for more.  Two items for one
/// platform are refused.  Every image is planned (and every check made)
/// before the output is touched; on error nothing is left.
pub fn build_platform_images(platforms: &[PlatformItem], destination: &ImageDestination, options: &ImageOptions) -> Result<()> {
    if platforms.is_empty() {
        return Err(Error::invalid_argument("no platform given: give each platform's store item as SYSTEM=ITEM"));
    }
    let mut per_platform: Vec<ImageOptions> = Vec::with_capacity(platforms.len());
    for p in platforms {
        let platform = platform_of_system(&p.system).map_err(|e| {
            Error::invalid_argument(format!("platform '{}={}': {}", p.system, p.item.display(), e.message))
        })?;
        if let Some(j) = per_platform.iter().position(|o| o.platform() == platform) {
            return Err(Error::invalid_argument(format!(
                "platform '{}={}': {} is given twice (as '{}' already); give one item per platform",
                p.system,
                p.item.display(),
                platform.name(),
                platforms[j].system
            )));
        }
        let mut o = options.clone();
        o.platform = platform;
        per_platform.push(o);
    }
    let is_index = destination.is_oci() || matches!(destination, ImageDestination::Registry(_));
    if !is_index && platforms.len() > 1 {
        let systems: Vec<&str> = platforms.iter().map(|p| p.system.as_str()).collect();
        return Err(Error::invalid_argument(format!(
            "output '{}': a docker-archive holds the image of one platform, and {} platforms were given ({}); \
             a multi-platform image is an OCI image index: write it to oci:DIR[:REF] or oci-archive:FILE[:REF]",
            match destination.output() {
                Some(Output::Path(path)) => path.display().to_string(),
                _ => "-".to_string(),
            },
            platforms.len(),
            systems.join(", ")
        )));
    }
    let store = StoreDir::new(&options.store_dir)?;
    let output = destination.output();
    if let Some(output) = &output {
        crate::output::refuse_build_inputs(output, options)?;
    }
    let mut prepared = Vec::with_capacity(platforms.len());
    for (p, o) in platforms.iter().zip(&per_platform) {
        prepared.push(prepare(&store, std::slice::from_ref(&p.item), p.closure.as_deref(), o)?);
    }
    // One SBOM job per platform image; with several, the --sbom-output
    // files are told apart by the system.
    let several = platforms.len() > 1;
    let pushed_name = pushed_name(destination);
    let mut sboms = Vec::with_capacity(platforms.len());
    for ((p, o), image) in platforms.iter().zip(&per_platform).zip(&prepared) {
        let mut contents = image.sbom_contents();
        if let Some(name) = &pushed_name {
            contents.image_name = name;
        }
        sboms.push(sbom::Job::new(&contents, o, destination, several.then_some(p.system.as_str()))?);
    }
    // One progress report for the whole: each image's counts after those
    // of the images before it.
    if let Some(progress) = &options.progress {
        let bytes_total: u64 = prepared.iter().map(|p| p.plan.layers.iter().map(|l| l.len).sum::<u64>()).sum();
        let items_total: u64 = prepared.iter().map(|p| p.plan.items_total).sum();
        let (mut bytes_before, mut items_before) = (0, 0);
        for (p, o) in prepared.iter().zip(per_platform.iter_mut()) {
            let (progress, b, i) = (Arc::clone(progress), bytes_before, items_before);
            o.progress = Some(Arc::new(move |r: Progress| {
                progress(Progress {
                    bytes_done: b + r.bytes_done,
                    bytes_total,
                    items_done: i + r.items_done,
                    items_total,
                })
            }));
            bytes_before += p.plan.layers.iter().map(|l| l.len).sum::<u64>();
            items_before += p.plan.items_total;
        }
    }
    // What the build learned is kept once it succeeded.
    let write = || -> Result<()> {
        if let ImageDestination::Registry(reference) = destination {
            let images: Vec<crate::registry::PlatformImage> = prepared
                .iter()
                .zip(&per_platform)
                .map(|(p, o)| crate::registry::PlatformImage { plan: &p.plan, main_name: p.main().name(), options: o })
                .collect();
            let jobs: Vec<Option<&sbom::Job>> = sboms.iter().map(Option::as_ref).collect();
            return crate::registry::referrers::push_with_sboms(&images, true, reference, options, &jobs);
        }
        if !destination.is_oci() {
            let out = OutputFile::open(&output.expect("a docker-archive has an output"))?;
            let image_id = archive::write_docker_archive(&prepared[0].plan, &out, &per_platform[0])?;
            let mut sbom_files = sbom::PreparedFiles::write(sboms[0].as_ref(), &image_id)?;
            sbom_files.commit()?;
            out.commit()?;
            sbom_files.keep();
            return Ok(());
        }
        let images: Vec<crate::oci::Image> = prepared
            .iter()
            .zip(&per_platform)
            .zip(&sboms)
            .map(|((p, o), job)| crate::oci::Image { plan: &p.plan, main_name: p.main().name(), options: o, sbom: job.as_ref() })
            .collect();
        crate::oci::write_images(&images, crate::oci::Shape::PlatformIndex, destination)
    };
    write()?;
    prepared.iter().for_each(|p| p.plan.cache.save());
    Ok(())
}

/// An image ready to write: its items, closure and plan, and the store
/// database it carries (a temporary file, removed when this is dropped).
struct Prepared {
    /// The items asked for; the first is the main item.
    roots: Vec<StoreItem>,
    closure: Closure,
    plan: Plan,
    _database: Option<ImageDatabase>,
    /// What the store database adds to the image (`--localstatedir`).
    database_units: Vec<Unit>,
}

impl Prepared {
    /// The main item.
    fn main(&self) -> &StoreItem {
        &self.roots[0]
    }

    /// What its SBOM is made from.
    fn sbom_contents(&self) -> sbom::Contents<'_> {
        sbom::Contents {
            roots: &self.roots,
            closure: &self.closure,
            image_name: &self.plan.image.tags[0],
            created: self.plan.image.created,
            image_database: &self.database_units,
        }
    }
}

/// Checks `items`, gets their closure (`closure`, checked, or computed)
/// and plans their image: every check that can fail, before any output.
fn prepare(store: &StoreDir, items: &[PathBuf], closure: Option<&[PathBuf]>, options: &ImageOptions) -> Result<Prepared> {
    let mut roots = Vec::new();
    for path in items {
        let item = store.parse_item(path)?;
        if std::fs::symlink_metadata(&item.path).is_err() {
            return Err(Error::new(ErrorKind::Io, format!("{}: store item does not exist", item.path.display())));
        }
        roots.push(item);
    }
    if options.localstatedir && options.database.is_none() {
        return Err(Error::invalid_argument(
            "localstatedir: the image's store database registers the closure with the hashes, sizes and \
             references the store database holds, and no store database was given (--database FILE)",
        ));
    }
    let closure = match closure {
        Some(list) => closure::check_closure(store, &roots, list, options.database.as_deref())?,
        None => closure::compute_closure(store, &roots, options.database.as_deref())?,
    };
    let database = match (&options.database, options.localstatedir) {
        (Some(source), true) => Some(ImageDatabase::build(&closure, source)?),
        _ => None,
    };
    let extras = Extras::new(&roots[0], options, database.as_ref())?;
    let plan = plan(&roots[0], &closure, &extras, options)?;
    let database_units = match &database {
        Some(db) => db.units(&roots[0], &options.transformations)?,
        None => Vec::new(),
    };
    Ok(Prepared { roots, closure, plan, _database: database, database_units })
}

/// The file name the CLI writes when no `-o` is given:
/// `<name>-docker-image.tar` plus the compression's suffix.
pub fn default_output_name(item: &StoreItem, options: &ImageOptions) -> String {
    format!("{}-docker-image.tar{}", item.name(), options.compression.suffix())
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str().ok_or_else(|| Error::invalid_argument(format!("{}: not valid UTF-8", path.display())))
}

/// The extra directories, symlinks and files the options ask for.
fn extra_units(main: &StoreItem, options: &ImageOptions) -> Result<Vec<Unit>> {
    let t = &options.transformations;
    let mut units = Vec::new();
    for d in &options.directories {
        units.push(Unit::Dir { name: archive_name(&d.path, t)?, mode: d.mode, uid: d.uid, gid: d.gid });
    }
    for s in &options.symlinks {
        // As `guix pack -S /bin=bin`: a relative target is inside the main item.
        let target = if s.target.starts_with('/') {
            s.target.clone()
        } else {
            format!("{}/{}", path_str(&main.path)?, s.target)
        };
        units.push(Unit::Symlink { name: archive_name(&s.link, t)?, target: target.into_bytes() });
    }
    for f in &options.files {
        units.push(Unit::File { name: archive_name(&f.path, t)?, source: f.source.clone() });
    }
    Ok(units)
}

/// What goes in besides the store items: the options' extras and the
/// store database, with their names, so that a layer's history names what
/// was asked for (not the parent directories every layer needs).
struct Extras {
    units: Vec<Unit>,
    /// The units the options asked for, by name.
    requested: BTreeMap<Vec<u8>, Unit>,
    /// Names of the database's units, and the database file's.
    database: BTreeSet<Vec<u8>>,
    database_file: Vec<u8>,
}

impl Extras {
    fn new(main: &StoreItem, options: &ImageOptions, database: Option<&ImageDatabase>) -> Result<Extras> {
        let mut units = extra_units(main, options)?;
        let requested = units.iter().map(|u| (u.name().to_vec(), u.clone())).collect();
        let database_units = match database {
            Some(db) => db.units(main, &options.transformations)?,
            None => Vec::new(),
        };
        let database = database_units.iter().map(|u| u.name().to_vec()).collect();
        units.extend(database_units);
        let database_file = archive_name(localstate::DATABASE_PATH, &options.transformations)?;
        Ok(Extras { units, requested, database, database_file })
    }

    /// What `units`, one layer's, holds besides store items, for its history.
    fn describe(&self, units: &[Unit]) -> Vec<String> {
        let mut dirs = Vec::new();
        let mut links = Vec::new();
        let mut files = Vec::new();
        let mut database = false;
        for u in units {
            let name = u.name();
            if self.database.contains(name) && !self.requested.contains_key(name) {
                database |= name == self.database_file.as_slice();
                continue;
            }
            // A parent directory another layer needs (such as /tmp for a
            // store under /tmp) is not the directory asked for.
            if self.requested.get(name) != Some(u) {
                continue;
            }
            let shown = format!("/{}", String::from_utf8_lossy(name));
            match u {
                Unit::Dir { .. } => dirs.push(shown),
                Unit::Symlink { .. } => links.push(shown),
                Unit::File { .. } => files.push(shown),
                Unit::Item { .. } => {}
            }
        }
        let mut parts = Vec::new();
        for (list, one, many) in [(dirs, "directory", "directories"), (links, "symlink", "symlinks"), (files, "file", "files")] {
            match list.len() {
                0 => {}
                1 => parts.push(format!("{one} {}", list[0])),
                2..=3 => parts.push(format!("{many} {}", list.join(", "))),
                n => parts.push(format!("{many} {}, and {} more", list[..3].join(", "), n - 3)),
            }
        }
        if database {
            parts.push(format!(
                "the store database /{} and root's profile as a GC root",
                String::from_utf8_lossy(&self.database_file)
            ));
        }
        parts
    }
}

/// A layer's history comment: the store items it holds, then what else.
fn describe(units: &[Unit], closure: &Closure, extras: &Extras) -> String {
    let names: Vec<&str> = units
        .iter()
        .filter_map(|u| match u {
            Unit::Item { item, .. } => Some(closure.items[*item].name()),
            _ => None,
        })
        .collect();
    let mut parts = Vec::new();
    match names.len() {
        0 => {}
        1..=3 => parts.push(names.join(", ")),
        n => parts.push(format!("{}, and {} more store items", names[..3].join(", "), n - 3)),
    }
    parts.extend(extras.describe(units));
    if parts.is_empty() {
        // Every layer holds an item or something asked for; should one
        // hold only parent directories, its comment still says so.
        parts.push(String::from("parent directories"));
    }
    parts.join("; ")
}


/// Plans the image of `closure`, `main` first, with `extras`: measures
/// every store item, groups the units into layers and measures those.
fn plan(main: &StoreItem, closure: &Closure, extras: &Extras, options: &ImageOptions) -> Result<Plan> {
    let t = &options.transformations;
    let mut item_units = Vec::new();
    for (i, item) in closure.items.iter().enumerate() {
        item_units.push(Unit::Item { name: archive_name(path_str(&item.path)?, t)?, item: i, path: item.path.clone() });
    }
    // All in one layer must hold together: this also checks a many-layer
    // image for two things at one path.
    let mut all = item_units.clone();
    all.extend(extras.units.iter().cloned());
    let single = layers::assemble(all)?;

    // Without a store database, the layer cache knows an item by its walk.
    let identify = options.cache_dir().is_some() && options.database.is_none();
    let measured = archive::measure_items_identified(&item_units, options.worker_threads(), options.cancel.as_deref(), identify)?;
    let item_sizes: Vec<u64> = measured.items.iter().map(|m| m.bytes).collect();

    let groups: Vec<Vec<Unit>> = match options.max_layers {
        None | Some(1) => vec![single],
        Some(n) => {
            let slots = n as usize - usize::from(!extras.units.is_empty());
            let mut groups = Vec::new();
            for group in layers::plan(&item_sizes, closure.references.as_deref(), slots) {
                let units = group.into_iter().map(|i| item_units[i].clone()).collect();
                groups.push(layers::assemble(units)?);
            }
            if !extras.units.is_empty() {
                groups.push(layers::assemble(extras.units.clone())?);
            }
            groups
        }
    };
    let mut planned = Vec::with_capacity(groups.len());
    for units in groups {
        let comment = describe(&units, closure, extras);
        planned.push(Layer::new(units, &measured, comment)?);
    }

    let entry_point = match options.entry_point.split_first() {
        None => Vec::new(),
        Some((program, args)) => {
            let program =
                if program.starts_with('/') { program.clone() } else { format!("{}/{}", path_str(&main.path)?, program) };
            std::iter::once(program).chain(args.iter().cloned()).collect()
        }
    };
    let tags = if options.tags.is_empty() {
        vec![format!("{}:latest", repository_from_name(main.name()))]
    } else {
        options.tags.clone()
    };
    let image = ImageMeta { entry_point, tags, created: options.effective_creation_time()? };
    let cache = crate::cache::PlanCache::open(options, &closure.items, &planned, &measured);
    Ok(Plan { layers: planned, measured, image, items_total: closure.items.len() as u64, cache })
}
