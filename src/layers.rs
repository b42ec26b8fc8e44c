//! What goes into which layer.
//!
//! A layer is a sorted list of [`Unit`]s: whole store items, and the extra
//! directories, symlinks and files the options ask for, with the parent
//! directories they need.  [`plan`] decides how store items are grouped
//! when more than one layer is asked for.

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
    // The units by name; a stable sort keeps units of one name in the
    // order given.
    let mut order: Vec<usize> = (0..units.len()).collect();
    order.sort_by(|&a, &b| units[a].name().cmp(units[b].name()));
    // The first unit of a name is kept; a later identical directory is
    // merged with it, anything else conflicts.  The conflict reported is
    // the first one in the order given.
    let mut kept: Vec<usize> = Vec::with_capacity(units.len());
    let mut first_conflict: Option<usize> = None;
    for &i in &order {
        match kept.last() {
            Some(&k) if units[k].name() == units[i].name() => {
                let merged = units[i] == units[k] && matches!(units[i], Unit::Dir { .. });
                if !merged && first_conflict.is_none_or(|c| i < c) {
                    first_conflict = Some(i);
                }
            }
            _ => kept.push(i),
        }
    }
    if let Some(i) = first_conflict {
        return Err(conflict(units[i].name(), units[i].name()));
    }
    // Implied parents.  Every ancestor of every name must be a directory
    // (so nothing sits inside a whole store item, whose tree is written in
    // one piece) or missing (it is then added).  Names come sorted, so a
    // name shares most of its ancestors with the one before it, which were
    // found to be fine.
    let find = |name: &[u8]| kept.binary_search_by(|&k| units[k].name().cmp(name)).ok().map(|k| &units[kept[k]]);
    let mut missing: Vec<Vec<u8>> = Vec::new();
    let mut previous: &[u8] = &[];
    for &k in &kept {
        let name = units[k].name();
        let mut end = 0;
        while let Some(i) = name[end..].iter().position(|&b| b == b'/') {
            let parent = &name[..end + i];
            end += i + 1;
            let checked = previous.len() > parent.len() && previous[parent.len()] == b'/' && previous.starts_with(parent);
            if checked {
                continue;
            }
            match find(parent) {
                None => missing.push(parent.to_vec()),
                Some(Unit::Dir { .. }) => {}
                Some(other) => return Err(conflict(other.name(), name)),
            }
        }
        previous = name;
    }
    missing.sort_unstable();
    missing.dedup();
    // Merge the kept units and the added parents, by name: sorting by name
    // puts every parent before its children.
    let mut units: Vec<Option<Unit>> = units.into_iter().map(Some).collect();
    let mut sorted = Vec::with_capacity(kept.len() + missing.len());
    let mut missing = missing.into_iter().peekable();
    for k in kept {
        let unit = units[k].take().expect("each unit once");
        while let Some(parent) = missing.next_if(|parent| parent.as_slice() < unit.name()) {
            sorted.push(Unit::Dir { name: parent, mode: PARENT_DIR_MODE, uid: 0, gid: 0 });
        }
        sorted.push(unit);
    }
    sorted.extend(missing.map(|name| Unit::Dir { name, mode: PARENT_DIR_MODE, uid: 0, gid: 0 }));
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

/// For each item, how many items reach it through references (itself
/// included).  `references[i]` lists what item `i` refers to; indices out
/// of range are ignored, a missing list means no references.
///
/// Counting, for every node of a graph, the nodes that reach it has no
/// known algorithm much faster than finding every reachable pair, so this
/// finds them 256 at a time: the strongly connected components (an item
/// and one it reaches both ways reach the same items) are ordered so that
/// references point forward, and one pass over that order carries, in a
/// 256-bit mask per component, which of 256 source items reach it.  That is
/// `n / 256` passes over the graph instead of one walk per item, and each
/// pass starts at its first source's place in the order.
fn popularity(n: usize, references: Option<&[Vec<usize>]>) -> Vec<usize> {
    let Some(refs) = references else { return vec![1; n] };
    let edges = |i: usize| refs.get(i).map(|v| v.as_slice()).unwrap_or(&[]).iter().copied().filter(move |&j| j < n);
    let (component, count) = strongly_connected_components(n, edges);
    // Components are numbered sinks first: a reference between two
    // components goes from a higher number to a lower one.
    let mut successors: Vec<Vec<u32>> = vec![Vec::new(); count];
    for i in 0..n {
        for j in edges(i) {
            if component[i] != component[j] {
                successors[component[i] as usize].push(component[j]);
            }
        }
    }
    for list in &mut successors {
        list.sort_unstable();
        list.dedup();
    }
    // Sources in the order of their components, highest (closest to the
    // roots) first, so that a pass starts where its first source is.
    let mut sources: Vec<usize> = (0..n).collect();
    sources.sort_by_key(|&i| std::cmp::Reverse(component[i]));

    type Mask = [u64; MASK_WORDS];
    let mut masks: Vec<Mask> = vec![[0; MASK_WORDS]; count];
    let mut reached_by = vec![0usize; count];
    for chunk in sources.chunks(MASK_WORDS * 64) {
        let first = component[chunk[0]] as usize;
        for mask in &mut masks[..=first] {
            *mask = [0; MASK_WORDS];
        }
        for (bit, &i) in chunk.iter().enumerate() {
            masks[component[i] as usize][bit / 64] |= 1 << (bit % 64);
        }
        for c in (0..=first).rev() {
            let mask = masks[c];
            if mask == [0; MASK_WORDS] {
                continue;
            }
            reached_by[c] += mask.iter().map(|w| w.count_ones() as usize).sum::<usize>();
            for &d in &successors[c] {
                let target = &mut masks[d as usize];
                for (t, m) in target.iter_mut().zip(mask) {
                    *t |= m;
                }
            }
        }
    }
    (0..n).map(|i| reached_by[component[i] as usize]).collect()
}

/// Words in the mask of sources one pass of [`popularity`] carries.
const MASK_WORDS: usize = 4;

/// The strongly connected components of the graph of `n` nodes whose
/// edges from `i` are `edges(i)` (Tarjan's algorithm, without recursion):
/// each node's component number, and how many there are.  A component is
/// numbered after every component it reaches, so edges between components
/// go from higher numbers to lower ones.
fn strongly_connected_components<E, I>(n: usize, edges: E) -> (Vec<u32>, usize)
where
    E: Fn(usize) -> I,
    I: Iterator<Item = usize>,
{
    const UNSEEN: u32 = u32::MAX;
    assert!(n < UNSEEN as usize, "too many items");
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0u32; n];
    let mut on_stack = vec![false; n];
    let mut component = vec![UNSEEN; n];
    let mut stack: Vec<usize> = Vec::new();
    let mut calls: Vec<(usize, I)> = Vec::new();
    let mut next_index = 0u32;
    let mut count = 0usize;
    for start in 0..n {
        if index[start] != UNSEEN {
            continue;
        }
        index[start] = next_index;
        low[start] = next_index;
        next_index += 1;
        stack.push(start);
        on_stack[start] = true;
        calls.push((start, edges(start)));
        while let Some((v, successors)) = calls.last_mut() {
            let v = *v;
            if let Some(w) = successors.next() {
                if index[w] == UNSEEN {
                    index[w] = next_index;
                    low[w] = next_index;
                    next_index += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    calls.push((w, edges(w)));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            calls.pop();
            if let Some((u, _)) = calls.last() {
                low[*u] = low[*u].min(low[v]);
            }
            if low[v] == index[v] {
                loop {
                    let w = stack.pop().expect("v is on the stack");
                    on_stack[w] = false;
                    component[w] = count as u32;
                    if w == v {
                        break;
                    }
                }
                count += 1;
            }
        }
    }
    (component, count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

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

    /// A small seeded generator (splitmix64): the same cases on every run.
    struct Random(u64);

    impl Random {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Popularity the obvious way: a walk from every item.
    fn reference_popularity(n: usize, references: Option<&[Vec<usize>]>) -> Vec<usize> {
        let Some(refs) = references else { return vec![1; n] };
        let mut count = vec![0usize; n];
        for start in 0..n {
            let mut seen = vec![false; n];
            let mut stack = vec![start];
            seen[start] = true;
            while let Some(i) = stack.pop() {
                count[i] += 1;
                for &j in refs.get(i).map(|v| v.as_slice()).unwrap_or(&[]) {
                    if j < n && !seen[j] {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        count
    }

    /// [`plan`] as it was written first, on the obvious popularity.
    fn reference_plan(sizes: &[u64], references: Option<&[Vec<usize>]>, slots: usize) -> Vec<Vec<usize>> {
        let n = sizes.len();
        if n == 0 {
            return vec![Vec::new()];
        }
        let slots = slots.max(1);
        let pop = reference_popularity(n, references);
        let mut order: Vec<usize> = (0..n).collect();
        if n <= slots {
            order.sort_by(|&a, &b| pop[b].cmp(&pop[a]).then(sizes[b].cmp(&sizes[a])).then(a.cmp(&b)));
            return order.into_iter().map(|i| vec![i]).collect();
        }
        let score = |i: usize| u128::from(sizes[i]) * pop[i] as u128;
        order.sort_by(|&a, &b| score(b).cmp(&score(a)).then(a.cmp(&b)));
        let mut chosen: Vec<usize> = order[..slots - 1].to_vec();
        let mut rest: Vec<usize> = order[slots - 1..].to_vec();
        chosen.sort_by(|&a, &b| pop[b].cmp(&pop[a]).then(sizes[b].cmp(&sizes[a])).then(a.cmp(&b)));
        rest.sort();
        let mut layers: Vec<Vec<usize>> = chosen.into_iter().map(|i| vec![i]).collect();
        layers.push(rest);
        layers
    }

    /// A random reference graph: acyclic like a store's, or with cycles,
    /// self-references, duplicates, out-of-range indices and missing lists.
    fn random_references(rng: &mut Random, n: usize, acyclic: bool) -> Vec<Vec<usize>> {
        let lists = if acyclic { n } else { rng.below(n + 1) };
        (0..lists)
            .map(|i| {
                let degree = rng.below(5);
                (0..degree)
                    .filter_map(|_| match (acyclic, i) {
                        (true, 0) => None,
                        (true, _) => Some(rng.below(i)),
                        (false, _) => Some(rng.below(n + 2)),
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn popularity_and_plan_match_the_obvious_walks() {
        let mut rng = Random(0x5ca1e);
        for case in 0..1500 {
            let n = rng.below(200.min(4 + case / 4));
            let refs = random_references(&mut rng, n, case % 3 != 0);
            // Sizes with many ties, so that the tie-breaks are exercised.
            let sizes: Vec<u64> = (0..n).map(|_| [0, 1, 7, 100, 1 << 40][rng.below(5)]).collect();
            let refs = (case % 7 != 0).then_some(refs.as_slice());
            assert_eq!(popularity(n, refs), reference_popularity(n, refs), "case {case}: {refs:?}");
            for slots in [0, 1, 2, n / 2, n, n + 1] {
                assert_eq!(plan(&sizes, refs, slots), reference_plan(&sizes, refs, slots), "case {case}, {slots} slots");
            }
        }
    }

    #[test]
    fn popularity_counts_cycles_once() {
        // 0 -> 1 -> 2 -> 1, 3 -> 2: {1, 2} is reached by 0, 1, 2 and 3.
        let refs = vec![vec![1], vec![2], vec![1, 2], vec![2]];
        assert_eq!(popularity(4, Some(&refs)), vec![1, 4, 4, 1]);
    }

    #[test]
    fn popularity_of_a_long_chain() {
        // Item i refers to i + 1: item i is reached by the i + 1 items up to it.
        let n = 5000;
        let refs: Vec<Vec<usize>> = (0..n).map(|i| if i + 1 < n { vec![i + 1] } else { vec![] }).collect();
        let expected: Vec<usize> = (1..=n).collect();
        assert_eq!(popularity(n, Some(&refs)), expected);
    }

    /// [`assemble`] as it was written first, with its check of every unit
    /// against every store item.
    fn reference_assemble(units: Vec<Unit>) -> Result<Vec<Unit>> {
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
        let sorted: Vec<Unit> = by_name.into_values().collect();
        let items: Vec<&[u8]> = sorted.iter().filter(|u| matches!(u, Unit::Item { .. })).map(|u| u.name()).collect();
        let is_ancestor = |a: &[u8], name: &[u8]| name.len() > a.len() && name.starts_with(a) && name[a.len()] == b'/';
        for u in &sorted {
            for item in &items {
                if is_ancestor(item, u.name()) {
                    return Err(conflict(item, u.name()));
                }
            }
        }
        Ok(sorted)
    }

    #[test]
    fn assemble_matches_the_quadratic_check() {
        let mut rng = Random(0xa55e);
        let parts = ["gnu", "store", "a", "a-b", "a.b", "b", "bin"];
        for case in 0..3000 {
            let units: Vec<Unit> = (0..rng.below(12))
                .map(|k| {
                    let depth = 1 + rng.below(4);
                    let name = (0..depth).map(|_| parts[rng.below(parts.len())]).collect::<Vec<_>>().join("/");
                    let name = name.into_bytes();
                    match rng.below(4) {
                        0 => Unit::Dir { name, mode: [PARENT_DIR_MODE, 0o700][rng.below(2)], uid: 0, gid: 0 },
                        1 => Unit::Symlink { name, target: b"x".to_vec() },
                        2 => Unit::File { name, source: "/etc/hostname".into() },
                        _ => Unit::Item { name, item: k, path: "/gnu/store/x".into() },
                    }
                })
                .collect();
            let got = assemble(units.clone()).map_err(|e| e.message);
            let expected = reference_assemble(units.clone()).map_err(|e| e.message);
            assert_eq!(got, expected, "case {case}: {units:?}");
        }
    }
}
