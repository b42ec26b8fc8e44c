//! Property-based tests of the tar writer: random store trees (nested
//! directories, files of many sizes, long and odd names, symlinks with long
//! and odd targets, executable or not, hard links) are built into an image
//! and read back with the `tar` crate and with GNU tar; every entry's name,
//! type, mode, size, contents and link target must be what the store
//! holds (with the store's modes), every layer's sha256 its diff_id, and
//! the bytes do not depend on the number of threads.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use guix_docker_native::store::nix_base32_encode;
use guix_docker_native::tarfmt::{self, Header, Kind};
use guix_docker_native::{build_docker_image, ErrorKind, ImageOptions, Output};
use proptest::prelude::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A file system tree to lay out below a store item.
#[derive(Debug, Clone)]
enum Node {
    File { size: usize, seed: u8, mode: u32 },
    Dir { mode: u32, children: Vec<(Vec<u8>, Node)> },
    Symlink { target: Vec<u8> },
    /// A hard link to the n-th regular file made before it (modulo their
    /// number); a regular file of its own when there is none yet.
    HardLink { nth: usize },
}

/// Bytes that are valid in a file name: anything but NUL and '/', with
/// more weight on the ones that tend to break things.
fn name_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        6 => proptest::sample::select(b"abcdefghijklmnopqrstuvwxyz0123456789".to_vec()),
        2 => proptest::sample::select(b" \t\n\r\\\"'*?[]{}$`~#%&()=+,;:<>|!@^-_.".to_vec()),
        2 => 0x80u8..=0xff,
        1 => 1u8..0x20,
    ]
}

/// A name of 1 to 255 bytes, often near the ustar limits of 100 and the
/// file-name limit of 255.  Never `.`, `..` or a `.wh.` whiteout.
fn file_name() -> impl Strategy<Value = Vec<u8>> {
    let ascii_or_bytes = prop_oneof![
        proptest::collection::vec(name_byte(), 1..20),
        // Multi-byte UTF-8.
        "[a-zé日本語🦀 ]{1,10}".prop_map(|s| s.into_bytes()),
        proptest::collection::vec(name_byte(), 95..106),
        proptest::collection::vec(name_byte(), 240..=255),
    ];
    ascii_or_bytes.prop_filter("not . or .. or a whiteout", |n| {
        n.len() <= 255 && n != b"." && n != b".." && !n.starts_with(b".wh.")
    })
}

/// The name of a symlink the options add: any text but a path separator,
/// up to beyond the 100 bytes of a ustar name, within the 255 bytes a file
/// name may have.
fn extra_link_name() -> impl Strategy<Value = String> {
    prop_oneof!["[^/\u{0}]{1,120}", "[a-zé]{90,130}"]
        .prop_filter("not . or .. or a whiteout", |n| n != "." && n != ".." && !n.starts_with(".wh.") && n.len() <= 255)
}

fn file_size() -> impl Strategy<Value = usize> {
    prop_oneof![
        proptest::sample::select(vec![0usize, 1, 100, 511, 512, 513, 1023, 1024, 1025, 10_240]),
        0usize..3000,
        Just(64 * 1024 + 17),
    ]
}

fn file_mode() -> impl Strategy<Value = u32> {
    proptest::sample::select(vec![0o644, 0o444, 0o600, 0o400, 0o755, 0o555, 0o700, 0o744, 0o654, 0o4755, 0o1644])
}

fn link_target() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(name_byte(), 1..30),
        proptest::collection::vec(prop_oneof![name_byte(), Just(b'/')], 90..110),
        proptest::collection::vec(prop_oneof![name_byte(), Just(b'/')], 200..1200),
        Just(b"/gnu/store/00000000000000000000000000000000-x/bin/sh".to_vec()),
        Just(b"../../../../etc/passwd".to_vec()),
    ]
}

fn leaf() -> impl Strategy<Value = Node> {
    prop_oneof![
        4 => (file_size(), any::<u8>(), file_mode()).prop_map(|(size, seed, mode)| Node::File { size, seed, mode }),
        2 => link_target().prop_map(|target| Node::Symlink { target }),
        1 => (0usize..100).prop_map(|nth| Node::HardLink { nth }),
        1 => proptest::sample::select(vec![0o755, 0o555, 0o700]).prop_map(|mode| Node::Dir { mode, children: vec![] }),
    ]
}

fn tree() -> impl Strategy<Value = Node> {
    leaf().prop_recursive(4, 40, 6, |inner| {
        (proptest::sample::select(vec![0o755, 0o555, 0o700, 0o750]), proptest::collection::vec((file_name(), inner), 0..6))
            .prop_map(|(mode, children)| Node::Dir { mode, children })
    })
}

/// A store item: its name after the hash, and its tree.
fn item() -> impl Strategy<Value = (String, Node)> {
    ("[a-zA-Z0-9+_?=-][a-zA-Z0-9+._?=-]{0,30}", prop_oneof![3 => tree(), 1 => leaf()])
}

/// File contents derived from a seed, so that files differ.
fn contents(size: usize, seed: u8) -> Vec<u8> {
    (0..size).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8).collect()
}

/// What an entry must be, by archive name (relative, a directory's with
/// a trailing '/').
#[derive(Debug, Clone, PartialEq, Eq)]
enum Want {
    Dir(u32),
    File(u32, Vec<u8>),
    Symlink(Vec<u8>),
}

struct Layout {
    files: Vec<PathBuf>,
    want: BTreeMap<Vec<u8>, Want>,
}

/// Makes `node` at `path` (archive name `name`) and records what the
/// archive must hold: the store's modes, 0555 directories, files 0555 when
/// anyone may execute them and 0444 otherwise, hard links as plain files.
fn lay_out(path: &Path, name: &[u8], node: &Node, layout: &mut Layout, dir_modes: &mut Vec<(PathBuf, u32)>) {
    match node {
        Node::File { size, seed, mode } => {
            let data = contents(*size, *seed);
            fs::write(path, &data).unwrap();
            fs::set_permissions(path, fs::Permissions::from_mode(*mode)).unwrap();
            let store_mode = if mode & 0o111 != 0 { 0o555 } else { 0o444 };
            layout.files.push(path.to_path_buf());
            layout.want.insert(name.to_vec(), Want::File(store_mode, data));
        }
        Node::HardLink { nth } if !layout.files.is_empty() => {
            let source = layout.files[nth % layout.files.len()].clone();
            fs::hard_link(&source, path).unwrap();
            let data = fs::read(&source).unwrap();
            let exec = fs::metadata(&source).unwrap().permissions().mode() & 0o111 != 0;
            layout.want.insert(name.to_vec(), Want::File(if exec { 0o555 } else { 0o444 }, data));
        }
        Node::HardLink { .. } => lay_out(path, name, &Node::File { size: 3, seed: 0, mode: 0o644 }, layout, dir_modes),
        Node::Symlink { target } => {
            symlink(OsStr::from_bytes(target), path).unwrap();
            layout.want.insert(name.to_vec(), Want::Symlink(target.clone()));
        }
        Node::Dir { mode, children } => {
            fs::create_dir(path).unwrap();
            let mut dir_name = name.to_vec();
            dir_name.push(b'/');
            layout.want.insert(dir_name.clone(), Want::Dir(0o555));
            let mut seen = std::collections::BTreeSet::new();
            for (child, node) in children {
                // Names differ within a directory, and a path stays under
                // PATH_MAX.
                if !seen.insert(child.clone()) || path.as_os_str().len() + child.len() > 3000 {
                    continue;
                }
                let mut child_name = dir_name.clone();
                child_name.extend_from_slice(child);
                lay_out(&path.join(OsStr::from_bytes(child)), &child_name, node, layout, dir_modes);
            }
            // Permissions last, so that the directory could be filled.
            dir_modes.push((path.to_path_buf(), *mode));
        }
    }
}

/// A store in a temporary directory holding `items`.
struct Store {
    dir: tempfile::TempDir,
    store: PathBuf,
    items: Vec<PathBuf>,
    layout: Layout,
}

fn make_store(items: &[(String, Node)]) -> Store {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("gnu/store");
    fs::create_dir_all(&store).unwrap();
    let mut layout = Layout { files: Vec::new(), want: BTreeMap::new() };
    let mut dir_modes = Vec::new();
    let mut paths = Vec::new();
    let store_name = store.to_str().unwrap().trim_start_matches('/').to_string();
    for (i, (name, node)) in items.iter().enumerate() {
        let hash = nix_base32_encode(&Sha256::digest(format!("{i}{name}"))[..20]);
        let base = format!("{hash}-{name}");
        let path = store.join(&base);
        lay_out(&path, format!("{store_name}/{base}").as_bytes(), node, &mut layout, &mut dir_modes);
        paths.push(path);
    }
    for (path, mode) in dir_modes {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }
    Store { dir, store, items: paths, layout }
}

/// Lets a user without privileges delete what a test made read-only.
fn make_writable(dir: &Path) {
    let _ = Command::new("chmod").arg("-R").arg("u+rwx").arg(dir).status();
}

/// One entry as the `tar` crate reads it.
#[derive(Debug)]
struct Entry {
    name: Vec<u8>,
    kind: u8,
    mode: u32,
    size: u64,
    data: Vec<u8>,
    link: Option<Vec<u8>>,
}

/// PAX records, `"<len> <key>=<value>\n"`, split by their lengths as
/// POSIX defines them (a value may hold any byte, newlines included).
fn pax_records(data: &[u8]) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, TestCaseError> {
    let mut records = BTreeMap::new();
    let mut rest = data;
    while !rest.is_empty() {
        let space = rest.iter().position(|&b| b == b' ').ok_or_else(|| TestCaseError::fail("a PAX record without a length"))?;
        let len: usize = std::str::from_utf8(&rest[..space]).ok().and_then(|n| n.parse().ok()).ok_or_else(|| TestCaseError::fail("a bad PAX length"))?;
        prop_assert!(len > space && len <= rest.len() && rest[len - 1] == b'\n', "a PAX record of a wrong length");
        let record = &rest[space + 1..len - 1];
        let equals = record.iter().position(|&b| b == b'=').ok_or_else(|| TestCaseError::fail("a PAX record without '='"))?;
        records.insert(record[..equals].to_vec(), record[equals + 1..].to_vec());
        rest = &rest[len..];
    }
    Ok(records)
}

/// A layer's entries, read with the `tar` crate's raw reader (headers as
/// they are) and PAX records split by their lengths.  The crate's own
/// PAX reading splits records at newlines, so it misreads a name or
/// target holding one; where there is none it must agree.
fn read_layer(layer: &[u8]) -> Result<Vec<Entry>, TestCaseError> {
    let mut out = Vec::new();
    let mut pax: Option<BTreeMap<Vec<u8>, Vec<u8>>> = None;
    let mut archive = tar::Archive::new(layer);
    for e in archive.entries().map_err(|e| TestCaseError::fail(e.to_string()))?.raw(true) {
        let mut e = e.map_err(|e| TestCaseError::fail(e.to_string()))?;
        let h = e.header().clone();
        prop_assert_eq!(h.mtime().unwrap(), 1);
        prop_assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
        prop_assert!(h.as_ustar().is_some(), "not a ustar header");
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        if h.entry_type() == tar::EntryType::XHeader {
            prop_assert!(pax.is_none(), "two PAX headers for one entry");
            pax = Some(pax_records(&data)?);
            continue;
        }
        let records = pax.take().unwrap_or_default();
        for key in records.keys() {
            prop_assert!(key == b"path" || key == b"linkpath", "PAX record {:?}", String::from_utf8_lossy(key));
        }
        let name = records.get(&b"path"[..]).cloned().unwrap_or_else(|| h.path_bytes().into_owned());
        let header_link = h.link_name_bytes().map(|l| l.into_owned());
        let link = records.get(&b"linkpath"[..]).cloned().or(header_link);
        let (kind, mode, size) = (h.entry_type().as_byte(), h.mode().unwrap(), h.size().unwrap());
        prop_assert_eq!(data.len() as u64, size);
        out.push(Entry { name, kind, mode, size, data, link });
    }
    prop_assert!(pax.is_none(), "a PAX header at the end");

    // The crate's ordinary reading, where newlines do not get in its way.
    let mut cooked = tar::Archive::new(layer);
    for (e, raw) in cooked.entries().unwrap().zip(&out) {
        let e = e.map_err(|e| TestCaseError::fail(e.to_string()))?;
        if !raw.name.contains(&b'\n') && !raw.link.as_ref().is_some_and(|l| l.contains(&b'\n')) {
            prop_assert_eq!(&e.path_bytes()[..], &raw.name[..]);
            prop_assert_eq!(e.link_name_bytes().map(|l| l.into_owned()), raw.link.clone());
            prop_assert_eq!(e.size(), raw.size);
        }
    }
    Ok(out)
}

/// The permission string `tar -tv` prints for an entry.
fn permissions(kind: u8, mode: u32) -> String {
    let mut s = String::from(match kind {
        b'5' => 'd',
        b'2' => 'l',
        _ => '-',
    });
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// What is at `path` on disk, under the archive name `name`, in the shape
/// of [`Want`], with the modes found.
fn walk_extracted(path: &Path, name: &[u8], out: &mut BTreeMap<Vec<u8>, Want>) {
    let meta = fs::symlink_metadata(path).unwrap();
    let mode = meta.permissions().mode() & 0o7777;
    if meta.is_dir() {
        let mut dir_name = name.to_vec();
        dir_name.push(b'/');
        out.insert(dir_name.clone(), Want::Dir(mode));
        for entry in fs::read_dir(path).unwrap() {
            let entry = entry.unwrap();
            let mut child = dir_name.clone();
            child.extend_from_slice(entry.file_name().as_bytes());
            walk_extracted(&entry.path(), &child, out);
        }
    } else if meta.file_type().is_symlink() {
        out.insert(name.to_vec(), Want::Symlink(fs::read_link(path).unwrap().into_os_string().as_bytes().to_vec()));
    } else {
        out.insert(name.to_vec(), Want::File(mode, fs::read(path).unwrap()));
    }
}

fn run(cmd: &mut Command) -> Result<Vec<u8>, TestCaseError> {
    let out = cmd.output().map_err(|e| TestCaseError::fail(format!("{cmd:?}: {e}")))?;
    prop_assert!(out.status.success(), "{:?}: {}", cmd, String::from_utf8_lossy(&out.stderr));
    Ok(out.stdout)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn random_trees_read_back_exactly(items in proptest::collection::vec(item(), 1..4), max_layers in proptest::option::of(1u32..4), threads in 1usize..4,
                                      extra_symlinks in proptest::collection::vec((extra_link_name(), "[^\u{0}]{1,150}"), 0..3)) {
        let s = make_store(&items);
        let out_dir = tempfile::tempdir().unwrap();
        let output = out_dir.path().join("image.tar");
        let mut o = ImageOptions::new();
        o.set_store_dir(&s.store).unwrap();
        // Symlinks the options add (`-S`), each in a directory of its own:
        // a relative target is inside the first item.
        let mut want_all = s.layout.want.clone();
        for (i, (name, target)) in extra_symlinks.iter().enumerate() {
            o.add_symlink(&format!("/sl{i}/{name}"), target).unwrap();
            let full = if target.starts_with('/') { target.clone() } else { format!("{}/{target}", s.items[0].display()) };
            want_all.insert(format!("sl{i}/").into_bytes(), Want::Dir(0o755));
            want_all.insert(format!("sl{i}/{name}").into_bytes(), Want::Symlink(full.into_bytes()));
        }
        if let Some(n) = max_layers {
            o.set_max_layers(n).unwrap();
        }
        o.set_threads(threads).unwrap();
        build_docker_image(&s.items[..1], Some(&s.items), &Output::Path(output.clone()), &o)
            .map_err(|e| TestCaseError::fail(e.message))?;
        let archive = fs::read(&output).unwrap();
        // The same bytes with another number of threads.
        let again = out_dir.path().join("again.tar");
        o.set_threads(threads % 3 + 1).unwrap();
        build_docker_image(&s.items[..1], Some(&s.items), &Output::Path(again.clone()), &o)
            .map_err(|e| TestCaseError::fail(e.message))?;
        prop_assert!(fs::read(&again).unwrap() == archive, "{} and {} threads give different archives", threads, threads % 3 + 1);
        fs::remove_file(&again).unwrap();

        // The outer archive: plain files with relative names.
        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for e in tar::Archive::new(&archive[..]).entries().unwrap() {
            let mut e = e.unwrap();
            prop_assert_eq!(e.header().entry_type(), tar::EntryType::Regular);
            let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
            prop_assert!(!name.starts_with('/') && !name.contains(".."), "{}", name);
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            prop_assert!(files.insert(name, data).is_none(), "a file twice in the outer archive");
        }
        let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
        prop_assert_eq!(manifest.as_array().unwrap().len(), 1);
        let config_name = manifest[0]["Config"].as_str().unwrap();
        let config_bytes = &files[config_name];
        prop_assert_eq!(config_name, format!("{}.json", hex::encode(Sha256::digest(config_bytes))));
        let config: Value = serde_json::from_slice(config_bytes).unwrap();
        let layer_names: Vec<&str> = manifest[0]["Layers"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
        let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
        prop_assert_eq!(diff_ids.len(), layer_names.len());
        prop_assert!(layer_names.len() as u32 <= max_layers.unwrap_or(1));
        // Every file but the config, the manifest and `repositories` is a layer the manifest names.
        for name in files.keys() {
            let known = name == "manifest.json" || name == "repositories" || name == config_name || layer_names.contains(&name.as_str());
            prop_assert!(known, "{} is not in manifest.json", name);
        }

        let mut union: BTreeMap<Vec<u8>, Want> = BTreeMap::new();
        let extract = out_dir.path().join("root");
        fs::create_dir(&extract).unwrap();
        for (layer_name, diff_id) in layer_names.iter().zip(diff_ids) {
            let layer = &files[*layer_name];
            prop_assert_eq!(diff_id.as_str().unwrap(), format!("sha256:{}", hex::encode(Sha256::digest(layer))));
            prop_assert!(layer.len().is_multiple_of(512) && layer.ends_with(&[0; 1024]));
            let entries = read_layer(layer)?;
            let mut names_here = std::collections::BTreeSet::new();
            for e in &entries {
                prop_assert!(!e.name.starts_with(b"/") && !e.name.is_empty());
                prop_assert_eq!(e.name.ends_with(b"/"), e.kind == b'5', "{:?}", String::from_utf8_lossy(&e.name));
                // Parents come first, in the same layer.
                let trimmed = e.name.strip_suffix(b"/").unwrap_or(&e.name);
                if let Some(slash) = trimmed.iter().rposition(|&b| b == b'/') {
                    let parent = &trimmed[..=slash];
                    prop_assert!(names_here.contains(parent), "{:?} before its parent", String::from_utf8_lossy(&e.name));
                }
                prop_assert!(names_here.insert(e.name.clone()), "{:?} twice in a layer", String::from_utf8_lossy(&e.name));
                let want = match e.kind {
                    b'5' => Want::Dir(e.mode),
                    b'0' => Want::File(e.mode, e.data.clone()),
                    b'2' => { prop_assert_eq!(e.size, 0); Want::Symlink(e.link.clone().unwrap_or_default()) }
                    other => return Err(TestCaseError::fail(format!("entry type {:?}", other as char))),
                };
                let store_prefix = !want_all.contains_key(&e.name);
                if store_prefix {
                    // A parent of the store directory.
                    prop_assert_eq!(&want, &Want::Dir(0o755), "{:?} is not in the store", String::from_utf8_lossy(&e.name));
                    let dir = PathBuf::from(OsStr::from_bytes(&e.name));
                    prop_assert!(s.store.starts_with(Path::new("/").join(dir)));
                } else {
                    prop_assert!(union.insert(e.name.clone(), want).is_none(), "{:?} in two layers", String::from_utf8_lossy(&e.name));
                }
            }

            // GNU tar lists the same entries, with the same types, modes and sizes...
            let layer_file = out_dir.path().join("layer.tar");
            fs::write(&layer_file, layer).unwrap();
            let listing = run(Command::new("tar").arg("-tvf").arg(&layer_file).env("LC_ALL", "C").env("TZ", "UTC"))?;
            let lines: Vec<&[u8]> = listing.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
            prop_assert_eq!(lines.len(), entries.len(), "{}", String::from_utf8_lossy(&listing));
            for (line, e) in lines.iter().zip(&entries) {
                let fields: Vec<&[u8]> = line.split(|&b| b == b' ').filter(|f| !f.is_empty()).take(4).collect();
                let (perms, size) = (permissions(e.kind, e.mode), e.size.to_string());
                let want: [&[u8]; 4] = [perms.as_bytes(), b"0/0", size.as_bytes(), b"1970-01-01"];
                prop_assert_eq!(&fields[..], &want[..], "{}", String::from_utf8_lossy(line));
            }
            // ... and extracts them, layer over layer, as an engine does.
            run(Command::new("tar").arg("-xf").arg(&layer_file).arg("-C").arg(&extract).arg("--same-permissions"))?;
        }
        prop_assert_eq!(&union, &want_all);

        // What GNU tar made is the store, with the store's modes.
        let mut extracted = BTreeMap::new();
        let store_name = s.store.to_str().unwrap().trim_start_matches('/');
        for entry in fs::read_dir(extract.join(store_name)).unwrap() {
            let entry = entry.unwrap();
            let name = format!("{store_name}/{}", entry.file_name().to_str().unwrap());
            walk_extracted(&entry.path(), name.as_bytes(), &mut extracted);
        }
        let root = unsafe { libc::geteuid() } == 0;
        if !root {
            // Without privileges the umask applies; compare without modes.
            let strip = |m: &BTreeMap<Vec<u8>, Want>| -> BTreeMap<Vec<u8>, Want> {
                m.iter().map(|(k, v)| (k.clone(), match v { Want::Dir(_) => Want::Dir(0), Want::File(_, d) => Want::File(0, d.clone()), l => l.clone() })).collect()
            };
            prop_assert_eq!(strip(&extracted), strip(&s.layout.want));
        } else {
            prop_assert_eq!(&extracted, &s.layout.want);
        }
        make_writable(s.dir.path());
        make_writable(out_dir.path());
    }

    /// A `.wh.` name anywhere in a tree is refused, naming it, and nothing is written.
    #[test]
    fn whiteout_names_are_refused(items in proptest::collection::vec(item(), 1..3), depth in 0usize..3, rest in proptest::collection::vec(name_byte(), 0..10)) {
        let mut items = items;
        let mut whiteout = b".wh.".to_vec();
        whiteout.extend(rest);
        // Put the whiteout `depth` directories down in the first item.
        let mut node = Node::File { size: 1, seed: 0, mode: 0o644 };
        for _ in 0..depth {
            node = Node::Dir { mode: 0o755, children: vec![(whiteout.clone(), node)] };
            whiteout = b"d".to_vec();
        }
        items[0].1 = Node::Dir { mode: 0o755, children: vec![(whiteout, node)] };
        let s = make_store(&items);
        let out_dir = tempfile::tempdir().unwrap();
        let mut o = ImageOptions::new();
        o.set_store_dir(&s.store).unwrap();
        let err = build_docker_image(&s.items[..1], Some(&s.items), &Output::Path(out_dir.path().join("x.tar")), &o).unwrap_err();
        prop_assert_eq!(err.kind, ErrorKind::UnsupportedFile, "{}", err.message);
        prop_assert!(err.message.contains("'.wh.'") && err.message.contains(s.items[0].to_str().unwrap()), "{}", err.message);
        prop_assert_eq!(fs::read_dir(out_dir.path()).unwrap().count(), 0);
        make_writable(s.dir.path());
    }

    /// Headers alone, with names, targets, sizes and ids of any length or
    /// magnitude (sizes past the 8 GiB of 11 octal digits, ids past 7):
    /// the length is what `header_len` promised, and every field reads back.
    #[test]
    fn headers_of_any_size_read_back(name in proptest::collection::vec(1u8..=255, 1..400),
                                      link in proptest::collection::vec(1u8..=255, 0..400),
                                      size in prop_oneof![0u64..10_000, (0o777_7777_7777u64 - 3)..(0o777_7777_7777u64 + 3), 0..=i64::MAX as u64],
                                      ids in (prop_oneof![0u32..10, (0o777_7777u32 - 2)..(0o777_7777u32 + 2), any::<u32>()], prop_oneof![0u32..10, any::<u32>()]),
                                      mode in 0u32..0o10000,
                                      kind in proptest::sample::select(vec![Kind::File, Kind::Dir, Kind::Symlink])) {
        let h = Header { name: &name, kind, mode, uid: ids.0, gid: ids.1, size, link: &link };
        let mut out = Vec::new();
        tarfmt::write_header(&h, &mut out);
        prop_assert_eq!(out.len() as u64, tarfmt::header_len(&h));
        prop_assert_eq!(tarfmt::entry_len(&h), tarfmt::header_len(&h) + size.div_ceil(512) * 512);
        let typeflag = match kind { Kind::File => b'0', Kind::Dir => b'5', Kind::Symlink => b'2' };
        // By the PAX records split by their lengths.
        let (records, main) = if out.len() > 512 {
            let pax_header = tar::Header::from_byte_slice(&out[..512]);
            prop_assert_eq!(pax_header.entry_type(), tar::EntryType::XHeader);
            let len = pax_header.size().unwrap() as usize;
            (pax_records(&out[512..512 + len])?, tar::Header::from_byte_slice(&out[out.len() - 512..]))
        } else {
            (BTreeMap::new(), tar::Header::from_byte_slice(&out[..]))
        };
        let number = |key: &[u8], field: u64| records.get(key).map_or(field, |v| std::str::from_utf8(v).unwrap().parse().unwrap());
        let read_name = records.get(&b"path"[..]).cloned().unwrap_or_else(|| main.path_bytes().into_owned());
        let read_link = records.get(&b"linkpath"[..]).cloned().unwrap_or_else(|| main.link_name_bytes().map(|l| l.into_owned()).unwrap_or_default());
        prop_assert_eq!(&read_name, &name);
        prop_assert_eq!(&read_link, &link);
        prop_assert_eq!(number(b"size", main.size().unwrap()), size);
        prop_assert_eq!(number(b"uid", main.uid().unwrap()), u64::from(ids.0));
        prop_assert_eq!(number(b"gid", main.gid().unwrap()), u64::from(ids.1));
        prop_assert_eq!(main.mode().unwrap(), mode);
        prop_assert_eq!(main.entry_type().as_byte(), typeflag);
        // By the tar crate, where a newline does not get in its way.
        if !name.contains(&b'\n') && !link.contains(&b'\n') {
            let mut archive = tar::Archive::new(&out[..]);
            let mut entries = archive.entries().unwrap();
            let e = entries.next().unwrap().map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&e.path_bytes()[..], &name[..]);
            prop_assert_eq!(e.size(), size);
            prop_assert_eq!(e.header().uid().unwrap(), u64::from(ids.0));
            prop_assert_eq!(e.header().gid().unwrap(), u64::from(ids.1));
            prop_assert_eq!(e.link_name_bytes().map(|l| l.into_owned()).unwrap_or_default(), link);
        }
    }
}
