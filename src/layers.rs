//! What goes into which layer.
//!
//! A layer is a sorted list of [`Unit`]s: whole store items, and the extra
//! directories, symlinks and files the options ask for, with the parent
//! directories they need.  [`plan`] decides how store items are grouped
//! when more than one layer is asked for.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::error::{Error, ErrorKind, Result};

/// Mode of the parent directories a layer needs (`gnu/`, `gnu/store/`, ...).
pub const PARENT_DIR_MODE: u32 = 0o755;

/// One thing a layer holds.  Names are archive names: relative, cleaned,
/// without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unit {
    Dir { name: Vec<u8>, mode: u32, uid: u32, gid: u32 },
    Symlink { name: Vec<u8>, target: Vec<u8> },
    /// A regular file copied from the host.
    File { name: Vec<u8>, source: PathBuf },
    /// A whole store item: the tree at `path`, `item` its closure index.
    Item { name: Vec<u8>, item: usize, path: PathBuf },
}

impl Unit {
    pub fn name(&self) -> &[u8] {
        match self {
            Unit::Dir { name, .. } | Unit::Symlink { name, .. } | Unit::File { name, .. } | Unit::Item { name, .. } => name,
        }
    }
}

/// Turns an absolute path in the image into its archive name, after the
/// first matching `(old, new)` prefix rewrite: `/gnu/store/x` -> `gnu/store/x`.
pub fn archive_name(path: &str, transformations: &[(String, String)]) -> Result<Vec<u8>> {
    let mut path = path.to_string();
    for (old, new) in transformations {
        let rest = if old.is_empty() { Some(path.as_str()) } else { path.strip_prefix(old.as_str()) };
        if let Some(rest) = rest {
            if rest.is_empty() || rest.starts_with('/') {
                path = format!("{new}{rest}");
                break;
            }
        }
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(Error::invalid_argument(format!("path '{path}': '..' is not allowed in an image path")))
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(Error::invalid_argument(format!("path '{path}': names the root directory")));
    }
    if let Some(last) = parts.last() {
        if last.starts_with(".wh.") {
            return Err(Error::new(
                ErrorKind::UnsupportedFile,
                format!("path '{path}': a name starting with '.wh.' means deletion to every engine"),
            ));
        }
    }
    Ok(parts.join("/").into_bytes())
}

fn is_ancestor(ancestor: &[u8], name: &[u8]) -> bool {
    name.len() > ancestor.len() && name.starts_with(ancestor) && name[ancestor.len()] == b'/'
}

fn conflict(a: &[u8], b: &[u8]) -> Error {
    Error::new(
        ErrorKind::UnsupportedFile,
        format!(
            "'/{}' and '/{}' conflict: the image would hold two different things at one path",
            String::from_utf8_lossy(a),
            String::from_utf8_lossy(b)
        ),
    )
}

/// Sorts `units`, adds the parent directories they need, and refuses two
/// things at one path (identical directories are merged; a directory given
/// explicitly keeps its mode and owner as a parent).
pub fn assemble(units: Vec<Unit>) -> Result<Vec<Unit>> {
    let mut by_name: BTreeMap<Vec<u8>, Unit> = BTreeMap::new();
    for unit in units {
        let name = unit.name().to_vec();
        match by_name.get(&name) {
            None => {
                by_name.insert(name, unit);
            }
            Some(existing) if *existing == unit && matches!(unit, Unit::Dir { .. }) => {}
            Some(_) => return Err(conflict(&name, &name)),
        }
    }
    // Implied parents.
    let names: Vec<Vec<u8>> = by_name.keys().cloned().collect();
    for name in &names {
        let mut end = 0;
        while let Some(i) = name[end..].iter().position(|&b| b == b'/') {
            let parent = name[..end + i].to_vec();
            end += i + 1;
            match by_name.get(&parent) {
                None => {
                    by_name.insert(parent.clone(), Unit::Dir { name: parent, mode: PARENT_DIR_MODE, uid: 0, gid: 0 });
                }
                Some(Unit::Dir { .. }) => {}
                Some(other) => return Err(conflict(other.name(), name)),
            }
        }
    }
    // Sorting by name puts every parent before its children.  Nothing may
    // sit inside a whole store item: its tree is written in one piece.
    let sorted: Vec<Unit> = by_name.into_values().collect();
    let items: Vec<&[u8]> = sorted.iter().filter(|u| matches!(u, Unit::Item { .. })).map(|u| u.name()).collect();
    for u in &sorted {
        for item in &items {
            if is_ancestor(item, u.name()) {
                return Err(conflict(item, u.name()));
            }
        }
    }
    Ok(sorted)
}

/// Groups closure items into at most `slots` layers, returned bottom first.
///
/// With more items than slots, `slots - 1` items get a layer of their own
/// and the rest share the last one.  Which items: the ones with the highest
/// `size * popularity`, where popularity is how many closure members reach
/// the item (itself included).  Guix takes the largest items and Nix the
/// most popular; each alone wastes layers on items that are tiny (popular
/// but small, like a tzdata stub) or that no other image shares (large but
/// leaf-level, like the application itself).  A layer pays off when other
/// images reuse it and when the reuse saves many bytes: the product weighs
/// both.  Without references every popularity is 1, which is Guix's rule.
///
/// Layers are ordered by popularity, most popular at the bottom: an engine
/// reuses a layer only together with all the layers under it, so the base
/// that many images share belongs below what varies.
pub fn plan(sizes: &[u64], references: Option<&[Vec<usize>]>, slots: usize) -> Vec<Vec<usize>> {
    let n = sizes.len();
    if n == 0 {
        return vec![Vec::new()];
    }
    let slots = slots.max(1);
    let pop = popularity(n, references);
    let mut order: Vec<usize> = (0..n).collect();
    if n <= slots {
        order.sort_by(|&a, &b| pop[b].cmp(&pop[a]).then(sizes[b].cmp(&sizes[a])).then(a.cmp(&b)));
        return order.into_iter().map(|i| vec![i]).collect();
    }
    let own = slots - 1;
    let score = |i: usize| u128::from(sizes[i]) * pop[i] as u128;
    order.sort_by(|&a, &b| score(b).cmp(&score(a)).then(a.cmp(&b)));
    let mut chosen: Vec<usize> = order[..own].to_vec();
    let mut rest: Vec<usize> = order[own..].to_vec();
    chosen.sort_by(|&a, &b| pop[b].cmp(&pop[a]).then(sizes[b].cmp(&sizes[a])).then(a.cmp(&b)));
    rest.sort();
    let mut layers: Vec<Vec<usize>> = chosen.into_iter().map(|i| vec![i]).collect();
    layers.push(rest);
    layers
}

/// For each item, how many items reach it through references (itself included).
fn popularity(n: usize, references: Option<&[Vec<usize>]>) -> Vec<usize> {
    let Some(refs) = references else { return vec![1; n] };
    let mut count = vec![0usize; n];
    let mut seen = vec![usize::MAX; n];
    let mut stack = Vec::new();
    for start in 0..n {
        stack.push(start);
        seen[start] = start;
        while let Some(i) = stack.pop() {
            count[i] += 1;
            for &j in refs.get(i).map(|v| v.as_slice()).unwrap_or(&[]) {
                if j < n && seen[j] != start {
                    seen[j] = start;
                    stack.push(j);
                }
            }
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> Unit {
        Unit::Dir { name: name.as_bytes().to_vec(), mode: PARENT_DIR_MODE, uid: 0, gid: 0 }
    }

    #[test]
    fn names_are_cleaned_and_transformed() {
        let t = vec![("/gnu/store".to_string(), "/opt/store".to_string())];
        assert_eq!(archive_name("/gnu/store/abc-x", &t).unwrap(), b"opt/store/abc-x");
        assert_eq!(archive_name("/gnu/storex", &t).unwrap(), b"gnu/storex");
        assert_eq!(archive_name("//tmp/./a/", &[]).unwrap(), b"tmp/a");
        assert!(archive_name("/a/../b", &[]).is_err());
        assert!(archive_name("/", &[]).is_err());
        assert_eq!(archive_name("/a/.wh.x", &[]).unwrap_err().kind, ErrorKind::UnsupportedFile);
    }

    #[test]
    fn parents_come_first_and_conflicts_are_refused() {
        let item = Unit::Item { name: b"gnu/store/aaa-x".to_vec(), item: 0, path: "/gnu/store/aaa-x".into() };
        let link = Unit::Symlink { name: b"bin".to_vec(), target: b"/gnu/store/aaa-x/bin".to_vec() };
        let units = assemble(vec![link.clone(), item.clone(), dir("tmp")]).unwrap();
        let names: Vec<String> = units.iter().map(|u| String::from_utf8_lossy(u.name()).into_owned()).collect();
        assert_eq!(names, ["bin", "gnu", "gnu/store", "gnu/store/aaa-x", "tmp"]);

        let inside = Unit::Symlink { name: b"gnu/store/aaa-x/bin".to_vec(), target: b"x".to_vec() };
        assert!(assemble(vec![item.clone(), inside]).is_err());
        let over = Unit::Symlink { name: b"gnu".to_vec(), target: b"x".to_vec() };
        assert!(assemble(vec![item, over]).is_err());
    }

    #[test]
    fn plan_gives_popular_large_items_their_own_layers() {
        // 0: glibc (large, referenced by all), 1: tiny popular, 2: app (large leaf), 3, 4: small.
        let sizes = [100, 1, 120, 5, 5];
        let refs = vec![vec![], vec![], vec![0, 1, 3, 4], vec![0, 1], vec![0, 1]];
        let layers = plan(&sizes, Some(&refs), 3);
        assert_eq!(layers, vec![vec![0], vec![2], vec![1, 3, 4]]);
        // Without references: the largest.
        let layers = plan(&sizes, None, 3);
        assert_eq!(layers, vec![vec![2], vec![0], vec![1, 3, 4]]);
        // Enough slots: one layer each, most popular first.
        assert_eq!(plan(&sizes, Some(&refs), 10).len(), 5);
        assert_eq!(plan(&sizes, Some(&refs), 10)[0], vec![0]);
    }
}
