//! The measuring and the writing of units (store items, and the
//! directories, symlinks and files the options add).
//!
//! Both passes take each entry's tar header from one description,
//! [`entry_header`] for the entries of a store item and [`unit_header`]
//! for the other units: the measuring pass adds up the lengths of those
//! headers, the writing pass writes them, so the two cannot disagree on a
//! layer's length unless the store itself changed between them.

use std::hash::RandomState;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::tar_writer::TarWriter;
use crate::error::{Error, ErrorKind, Result};
use crate::layers::Unit;
use crate::tarfmt::{self, Header, Kind};
use crate::tree::{self, Entry, Meta, Visitor};

/// What the measuring pass saw of the store items: the writing pass
/// checks every entry against it.
pub struct Measured {
    /// The fingerprints' keys, fresh for each build.
    pub keys: RandomState,
    /// By closure index.
    pub items: Vec<MeasuredItem>,
}

/// One store item as measured.
pub struct MeasuredItem {
    /// Bytes the item takes in a layer.
    pub bytes: u64,
    /// One per entry, in walk order (see [`Entry::fingerprint`]): 8 bytes
    /// per file, directory and symlink.
    fingerprints: Vec<u64>,
    /// The digest of its metadata walk, the layer cache's identity of an
    /// item without a store database (see [`crate::cache::key`]), when
    /// asked for.
    pub identity: Option<[u8; 32]>,
}

/// The tar header of one entry of a store item, from what the walk listed
/// (a file opened later is checked to be that file, mode and size
/// included).  An entry an image cannot carry is an error.
fn entry_header<'e>(e: &'e Entry) -> Result<Header<'e>> {
    let dir = Header { name: e.name, kind: Kind::Dir, mode: tree::DIR_MODE, uid: 0, gid: 0, size: 0, link: b"" };
    Ok(match &e.kind {
        tree::Kind::Dir { .. } => dir,
        tree::Kind::File { .. } => Header { kind: Kind::File, mode: tree::file_mode(e.meta.mode), size: e.meta.size, ..dir },
        tree::Kind::Symlink { target } => Header { kind: Kind::Symlink, mode: 0o777, link: target, ..dir },
        tree::Kind::Unsupported(what) => return Err(tree::unsupported(e.path, what)),
    })
}

/// The mode an extra file from the host with permission bits `mode` gets:
/// readable, and executable when the host file is.
fn extra_file_mode(mode: u32) -> u32 {
    if tree::file_mode(mode) == 0o555 {
        0o755
    } else {
        0o644
    }
}

/// Calls `f` with the tar header of `unit`, which is not a store item (a
/// store item's entries are [`entry_header`]'s); `host_file` is what was
/// seen of an extra file when it was planned.  A directory's archive name
/// gets its `/` here.
fn unit_header<R>(unit: &Unit, host_file: Option<&Meta>, f: impl FnOnce(&Header) -> R) -> R {
    let plain = |name| Header { name, kind: Kind::File, mode: 0, uid: 0, gid: 0, size: 0, link: b"" };
    match unit {
        Unit::Dir { name, mode, uid, gid } => {
            let mut dir_name = name.clone();
            dir_name.push(b'/');
            f(&Header { kind: Kind::Dir, mode: *mode, uid: *uid, gid: *gid, ..plain(&dir_name) })
        }
        Unit::Symlink { name, target } => f(&Header { kind: Kind::Symlink, mode: 0o777, link: target, ..plain(name) }),
        Unit::File { name, .. } => {
            let meta = host_file.expect("an extra file is looked at when the layer is planned");
            f(&Header { mode: extra_file_mode(meta.mode), size: meta.size, ..plain(name) })
        }
        Unit::Item { .. } => unreachable!("a store item's headers are its entries'"),
    }
}

// Measuring.

/// The measuring pass's visitor: adds up what a walk would write, refuses
/// what an image cannot carry, and keeps each entry's fingerprint.
struct Measure<'a> {
    keys: &'a RandomState,
    cancel: Option<&'a AtomicBool>,
    item: MeasuredItem,
    identity: Option<crate::cache::key::WalkIdentity>,
}

impl Visitor for Measure<'_> {
    fn entry(&mut self, e: &Entry) -> Result<()> {
        // An item may hold a million files: a cancelled build stops here too.
        if self.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(Error::cancelled());
        }
        self.item.bytes += tarfmt::entry_len(&entry_header(e)?);
        self.item.fingerprints.push(e.fingerprint(self.keys));
        if let Some(identity) = &mut self.identity {
            identity.entry(e);
        }
        Ok(())
    }
}

/// Measures the store item at `path`, named `name` in the archive; with
/// `identify`, digests its metadata walk too.
fn measure_item(path: &Path, name: &[u8], keys: &RandomState, cancel: Option<&AtomicBool>, identify: bool) -> Result<MeasuredItem> {
    let item = MeasuredItem { bytes: 0, fingerprints: Vec::new(), identity: None };
    let mut m = Measure { keys, cancel, item, identity: identify.then(Default::default) };
    tree::walk(path, name, &mut m)?;
    m.item.identity = m.identity.map(|i| i.finish());
    Ok(m.item)
}

/// Measures every store item of `units` (all [`Unit::Item`]s, in closure
/// order), on `threads` threads; the error reported is that of the first
/// failing item in closure order.
#[cfg(test)]
pub fn measure_items(units: &[Unit], threads: usize, cancel: Option<&AtomicBool>) -> Result<Measured> {
    measure_items_identified(units, threads, cancel, false)
}

/// As [`measure_items`]; with `identify`, each item's
/// [`MeasuredItem::identity`] is computed on the way.
pub fn measure_items_identified(units: &[Unit], threads: usize, cancel: Option<&AtomicBool>, identify: bool) -> Result<Measured> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let keys = std::hash::RandomState::new();
    let results: Vec<(usize, Result<MeasuredItem>)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.min(units.len()).max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= units.len() || failed.load(Ordering::Relaxed) {
                            return out;
                        }
                        if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                            out.push((i, Err(Error::cancelled())));
                            failed.store(true, Ordering::Relaxed);
                            return out;
                        }
                        let Unit::Item { name, path, .. } = &units[i] else { unreachable!() };
                        let r = measure_item(path, name, &keys, cancel, identify);
                        if r.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        out.push((i, r));
                    }
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("measuring thread panicked")).collect()
    });
    let mut items: Vec<Option<MeasuredItem>> = (0..units.len()).map(|_| None).collect();
    let mut first_error: Option<(usize, Error)> = None;
    for (i, r) in results {
        match r {
            Ok(m) => items[i] = Some(m),
            Err(e) => {
                if first_error.as_ref().is_none_or(|(j, _)| i < *j) {
                    first_error = Some((i, e));
                }
            }
        }
    }
    match first_error {
        Some((_, e)) => Err(e),
        None => Ok(Measured { keys, items: items.into_iter().map(|m| m.expect("every item measured")).collect() }),
    }
}

/// Bytes a unit takes in a layer, and for an extra file, what it is (which
/// the writing pass checks).
fn unit_len(unit: &Unit, measured: &Measured) -> Result<(u64, Option<Meta>)> {
    Ok(match unit {
        Unit::Item { item, .. } => (measured.items[*item].bytes, None),
        Unit::File { source, .. } => {
            let meta = tree::host_file_meta(source)?;
            (unit_header(unit, Some(&meta), tarfmt::entry_len), Some(meta))
        }
        Unit::Dir { .. } | Unit::Symlink { .. } => (unit_header(unit, None, tarfmt::entry_len), None),
    })
}

// Writing.

/// The writing pass's visitor: writes each entry once it is checked to be
/// the one measured at that place.
struct Replay<'w, 'a> {
    w: &'w mut TarWriter<'a>,
    keys: &'w RandomState,
    expected: &'w [u64],
    next: usize,
}

impl Visitor for Replay<'_, '_> {
    fn entry(&mut self, e: &Entry) -> Result<()> {
        if self.expected.get(self.next) != Some(&e.fingerprint(self.keys)) {
            return Err(tree::changed(e.path, &format!("it is now {}, not what was measured", e.describe())));
        }
        self.next += 1;
        let h = entry_header(e)?;
        match &e.kind {
            tree::Kind::File { .. } => self.w.copy_file(&h, &mut e.open()?, e.path),
            _ => self.w.header(&h),
        }
    }
}

/// Writes one unit; `host_file` is what [`unit_len`] saw of an extra file.
fn write_unit(w: &mut TarWriter, unit: &Unit, host_file: Option<&Meta>) -> Result<()> {
    match unit {
        Unit::File { source, .. } => {
            let planned = host_file.expect("an extra file is looked at when the layer is planned");
            let mut file = tree::open_host_file(source, planned)?;
            unit_header(unit, host_file, |h| w.copy_file(h, &mut file, source))
        }
        Unit::Item { name, item, path } => {
            let shared = w.shared;
            let expected = &shared.measured.items[*item].fingerprints;
            let mut replay = Replay { w, keys: &shared.measured.keys, expected, next: 0 };
            tree::walk(path, name, &mut replay)?;
            if replay.next != expected.len() {
                return Err(tree::changed(path, "entries measured in it are gone"));
            }
            shared.items_done.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        Unit::Dir { .. } | Unit::Symlink { .. } => unit_header(unit, None, |h| w.header(h)),
    }
}

// A layer: its units, then the end of the archive.

/// One layer as planned: its units, its length, and what its history says.
pub struct Layer {
    pub units: Vec<Unit>,
    /// For each unit that is an extra file, what was seen of it.
    host_files: Vec<Option<Meta>>,
    /// Length of the layer's tar, end-of-archive blocks included.
    pub len: u64,
    /// The history comment: what the layer holds.
    pub comment: String,
}

impl Layer {
    /// Measures a layer of `units` (store items as `measured` saw them).
    pub fn new(units: Vec<Unit>, measured: &Measured, comment: String) -> Result<Layer> {
        let mut len = tarfmt::END_OF_ARCHIVE.len() as u64;
        let mut host_files = Vec::with_capacity(units.len());
        for u in &units {
            let (unit_len, host_file) = unit_len(u, measured)?;
            len += unit_len;
            host_files.push(host_file);
        }
        Ok(Layer { units, host_files, len, comment })
    }

    /// Writes the layer's tar, number `index` (for messages), to `w`, and
    /// checks it has the length measured.
    pub(super) fn write(&self, w: &mut TarWriter, index: usize) -> Result<()> {
        let start = w.written();
        for (unit, host_file) in self.units.iter().zip(&self.host_files) {
            write_unit(w, unit, host_file.as_ref())?;
        }
        w.put(&tarfmt::END_OF_ARCHIVE)?;
        let written = w.written() - start;
        if written != self.len {
            return Err(Error::new(
                ErrorKind::Io,
                format!(
                    "the store changed during the build: layer {} has {written} bytes, {} were planned",
                    index + 1,
                    self.len
                ),
            ));
        }
        Ok(())
    }
}
