//! Multi-platform images through the Rust API (`build_platform_images`),
//! on a small store made here: an x86_64 item and an aarch64 item of the
//! same package, both referring to one data item.  The index, the
//! platforms, each image's own closure, blobs stored once, the same bytes
//! in a layout and an oci-archive, and the refusals.  (The real consumers
//! read these images in tests/consumers/platforms.sh.)

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use guix_docker_native::{
    build_image, build_platform_images, parse_destination, Compression, Destination, ErrorKind, ImageOptions,
    PlatformItem, Progress,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const HASH_DATA: &str = "0a1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r";
const HASH_X86: &str = "1zyxwvsrqpnmlkjihgfdcba987654321";
const HASH_ARM: &str = "2abcdfghijklmnpqrsvwxyz012345678";

struct Store {
    dir: tempfile::TempDir,
    store: PathBuf,
    data: PathBuf,
    x86: PathBuf,
    arm: PathBuf,
}

/// The store: `hello-1.0` twice (one per system: another hash, another
/// program), each referring to `greeting-1.0` by its path.
fn make_store() -> Store {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("gnu/store");
    let data = store.join(format!("{HASH_DATA}-greeting-1.0"));
    fs::create_dir_all(data.join("share")).unwrap();
    fs::write(data.join("share/message.txt"), vec![b'g'; 200_000]).unwrap();
    let hello = |hash: &str, program: &str| {
        let item = store.join(format!("{hash}-hello-1.0"));
        fs::create_dir_all(item.join("bin")).unwrap();
        let file = item.join("bin/hello");
        fs::write(&file, format!("{program}\n{}/share/message.txt\n", data.display())).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o755)).unwrap();
        item
    };
    let x86 = hello(HASH_X86, "x86_64 program");
    let arm = hello(HASH_ARM, "aarch64 program");
    Store { store: store.clone(), data, x86, arm, dir }
}

fn options(s: &Store) -> ImageOptions {
    let mut o = ImageOptions::new();
    o.set_store_dir(&s.store).unwrap();
    o.add_tag("hello:1.0").unwrap();
    o.set_entry_point("bin/hello").unwrap();
    // Each item a layer of its own, so that the data item's is shared.
    o.set_max_layers(10).unwrap();
    o
}

fn platforms(s: &Store) -> Vec<PlatformItem> {
    vec![
        PlatformItem { system: "x86_64-linux".into(), item: s.x86.clone(), closure: None },
        PlatformItem { system: "aarch64-linux".into(), item: s.arm.clone(), closure: None },
    ]
}

fn destination(text: &str) -> Destination {
    parse_destination(text.as_ref()).unwrap()
}

/// A layout's or an oci-archive's files: `index.json` and the blobs by hex.
struct Layout {
    index: Value,
    blobs: BTreeMap<String, Vec<u8>>,
}

impl Layout {
    fn read_dir(dir: &Path) -> Layout {
        let mut blobs = BTreeMap::new();
        for entry in fs::read_dir(dir.join("blobs/sha256")).unwrap() {
            let entry = entry.unwrap();
            blobs.insert(entry.file_name().into_string().unwrap(), fs::read(entry.path()).unwrap());
        }
        assert_eq!(fs::read(dir.join("oci-layout")).unwrap(), br#"{"imageLayoutVersion":"1.0.0"}"#);
        Layout { index: serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap(), blobs }
    }

    /// The archive's entries must be unique: a blob the images share is in
    /// it once.
    fn read_archive(file: &Path) -> Layout {
        let bytes = fs::read(file).unwrap();
        let mut names = Vec::new();
        let mut blobs = BTreeMap::new();
        let mut index = None;
        for e in tar::Archive::new(&bytes[..]).entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            names.push(name.clone());
            if let Some(hex) = name.strip_prefix("blobs/sha256/").filter(|h| !h.is_empty()) {
                blobs.insert(hex.to_string(), data);
            } else if name == "index.json" {
                index = Some(serde_json::from_slice(&data).unwrap());
            }
        }
        let unique: BTreeSet<&String> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "entries written twice: {names:?}");
        // Nothing after the end of the archive (two zero blocks).
        let end = bytes.len() - 1024;
        assert!(bytes[end..].iter().all(|&b| b == 0));
        Layout { index: index.expect("index.json"), blobs }
    }

    fn blob(&self, digest: &Value) -> &[u8] {
        let hex = digest.as_str().unwrap().strip_prefix("sha256:").unwrap();
        let bytes = &self.blobs[hex];
        assert_eq!(hex::encode(Sha256::digest(bytes)), hex, "a blob's name is its digest");
        bytes
    }

    fn json(&self, digest: &Value) -> Value {
        serde_json::from_slice(self.blob(digest)).unwrap()
    }

    /// The image index the ref names.
    fn platform_index(&self, reference: &str) -> Value {
        let entries: Vec<&Value> = self.index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["annotations"]["org.opencontainers.image.ref.name"] == reference)
            .collect();
        assert_eq!(entries.len(), 1, "{}", self.index);
        let entry = entries[0];
        assert_eq!(entry["mediaType"], "application/vnd.oci.image.index.v1+json");
        assert!(entry.get("platform").is_none());
        assert_eq!(entry["annotations"]["io.containerd.image.name"], "docker.io/library/hello:1.0");
        let index = self.json(&entry["digest"]);
        assert_eq!(entry["size"], self.blob(&entry["digest"]).len());
        index
    }

    /// Each layer's tar (uncompressed) of the manifest `entry`, and its config.
    fn image(&self, entry: &Value) -> (Value, Vec<Vec<u8>>) {
        let manifest = self.json(&entry["digest"]);
        let config = self.json(&manifest["config"]["digest"]);
        let layers: Vec<Vec<u8>> = manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                let blob = self.blob(&l["digest"]);
                match l["mediaType"].as_str().unwrap() {
                    "application/vnd.oci.image.layer.v1.tar" => blob.to_vec(),
                    "application/vnd.oci.image.layer.v1.tar+gzip" => {
                        let mut out = Vec::new();
                        flate2::read::MultiGzDecoder::new(blob).read_to_end(&mut out).unwrap();
                        out
                    }
                    "application/vnd.oci.image.layer.v1.tar+zstd" => zstd::decode_all(blob).unwrap(),
                    other => panic!("media type {other}"),
                }
            })
            .collect();
        let diff_ids: Vec<String> =
            layers.iter().map(|l| format!("sha256:{}", hex::encode(Sha256::digest(l)))).collect();
        assert_eq!(config["rootfs"]["diff_ids"], json!(diff_ids));
        (config, layers)
    }
}

/// The store items a layer's tar holds (`gnu/store/<hash>-<name>`).
fn items_in(layers: &[Vec<u8>], store: &Path) -> BTreeSet<String> {
    let prefix = store.to_str().unwrap().trim_start_matches('/').to_string() + "/";
    let mut items = BTreeSet::new();
    for layer in layers {
        for e in tar::Archive::new(&layer[..]).entries().unwrap() {
            let name = e.unwrap().path().unwrap().to_string_lossy().into_owned();
            if let Some(rest) = name.strip_prefix(&prefix) {
                if let Some(item) = rest.split('/').next().filter(|i| !i.is_empty()) {
                    items.insert(item.to_string());
                }
            }
        }
    }
    items
}

fn base(path: &Path) -> String {
    path.file_name().unwrap().to_str().unwrap().to_string()
}

/// The index lists each platform's manifest, in order, with its platform;
/// each image's config says its architecture and holds exactly its
/// item's closure, with its own entry point.
fn check_platform_image(s: &Store, layout: &Layout) {
    let index = layout.platform_index("hello:1.0");
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 2);
    assert_eq!(manifests[0]["platform"], json!({"architecture": "amd64", "os": "linux"}));
    assert_eq!(manifests[1]["platform"], json!({"architecture": "arm64", "os": "linux", "variant": "v8"}));
    for (entry, item, arch, variant) in
        [(&manifests[0], &s.x86, "amd64", None), (&manifests[1], &s.arm, "arm64", Some("v8"))]
    {
        assert_eq!(entry["mediaType"], "application/vnd.oci.image.manifest.v1+json");
        let (config, layers) = layout.image(entry);
        assert_eq!(config["architecture"], arch);
        assert_eq!(config["os"], "linux");
        assert_eq!(config.get("variant").and_then(Value::as_str), variant);
        assert_eq!(config["config"]["Entrypoint"], json!([format!("{}/bin/hello", item.display())]));
        assert_eq!(items_in(&layers, &s.store), BTreeSet::from([base(item), base(&s.data)]), "{arch}");
    }
}

#[test]
fn a_layout_holds_one_index_of_the_platforms_and_shared_blobs_once() {
    let s = make_store();
    let dir = s.dir.path().join("layout");
    build_platform_images(&platforms(&s), &destination(&format!("oci:{}", dir.display())), &options(&s)).unwrap();
    let layout = Layout::read_dir(&dir);
    check_platform_image(&s, &layout);
    // Each image: the item's layer, the data item's, the config and the
    // manifest; the data item's layer is the same blob for both; and the
    // index: 2 + 2 + 2 + 1 + 1 blobs.
    let index = layout.platform_index("hello:1.0");
    let mut layer_digests = Vec::new();
    for entry in index["manifests"].as_array().unwrap() {
        let manifest = layout.json(&entry["digest"]);
        layer_digests.push(
            manifest["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()).collect::<Vec<_>>(),
        );
    }
    let shared: Vec<&String> = layer_digests[0].iter().filter(|d| layer_digests[1].contains(d)).collect();
    assert_eq!(shared.len(), 1, "{layer_digests:?}");
    assert_eq!(layout.blobs.len(), 8, "{:?}", layout.blobs.keys());
}

/// Reads the oci-archive written to a FIFO at `path` by `build`, as a
/// program reading a pipe would.
fn through_fifo(path: &Path, build: impl FnOnce()) -> Vec<u8> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a C string made here.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {}", path.display());
    let reader = {
        let path = path.to_path_buf();
        std::thread::spawn(move || fs::read(path).unwrap())
    };
    build();
    let bytes = reader.join().unwrap();
    fs::remove_file(path).unwrap();
    bytes
}

#[test]
fn an_oci_archive_holds_the_same_blobs_as_the_layout_every_time() {
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let s = make_store();
        let mut o = options(&s);
        o.set_compression(compression, None).unwrap();
        let dir = s.dir.path().join("layout");
        build_platform_images(&platforms(&s), &destination(&format!("oci:{}", dir.display())), &o).unwrap();
        let layout = Layout::read_dir(&dir);
        let file = s.dir.path().join("image.tar");
        let mut first = None;
        for threads in [1, 4] {
            o.set_threads(threads).unwrap();
            build_platform_images(&platforms(&s), &destination(&format!("oci-archive:{}", file.display())), &o).unwrap();
            let bytes = fs::read(&file).unwrap();
            match &first {
                None => first = Some(bytes),
                Some(first) => assert!(first == &bytes, "{compression:?}: another thread count, other bytes"),
            }
        }
        // To a pipe, each blob is spooled first: the same bytes.
        let fifo = s.dir.path().join("fifo");
        let piped = through_fifo(&fifo, || {
            build_platform_images(&platforms(&s), &destination(&format!("oci-archive:{}", fifo.display())), &o).unwrap();
        });
        assert!(first.as_ref() == Some(&piped), "{compression:?}: other bytes through a pipe");
        let archive = Layout::read_archive(&file);
        check_platform_image(&s, &archive);
        assert_eq!(archive.index, layout.index, "{compression:?}");
        assert_eq!(archive.blobs, layout.blobs, "{compression:?}");
    }
}

#[test]
fn a_platform_s_closure_may_come_from_the_caller_checked() {
    let s = make_store();
    let dir = s.dir.path().join("layout");
    let mut given = platforms(&s);
    // The caller's closure is checked, then used: the data item's layer
    // is still shared.
    given[1].closure = Some(vec![s.arm.clone(), s.data.clone()]);
    build_platform_images(&given, &destination(&format!("oci:{}", dir.display())), &options(&s)).unwrap();
    check_platform_image(&s, &Layout::read_dir(&dir));
    // It must hold the item.
    given[1].closure = Some(vec![s.data.clone()]);
    let e = build_platform_images(&given, &destination(&format!("oci:{}", s.dir.path().join("l2").display())), &options(&s))
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::IncompleteClosure, "{}", e.message);
    assert!(!s.dir.path().join("l2").exists());
}

#[test]
fn an_image_added_to_a_layout_keeps_the_others() {
    let s = make_store();
    let dir = s.dir.path().join("layout");
    let mut single = options(&s);
    single.add_tag("other:1").unwrap();
    let other = destination(&format!("oci:{}:other", dir.display()));
    build_image(&[s.x86.clone()], None, &other, &single).unwrap();
    build_platform_images(&platforms(&s), &destination(&format!("oci:{}", dir.display())), &options(&s)).unwrap();
    let layout = Layout::read_dir(&dir);
    let entries = layout.index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["annotations"]["org.opencontainers.image.ref.name"], "other");
    assert_eq!(entries[0]["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(entries[0]["platform"]["architecture"], ImageOptions::new().architecture());
    check_platform_image(&s, &layout);
}

#[test]
fn one_platform_may_be_a_docker_archive_several_may_not() {
    let s = make_store();
    let file = s.dir.path().join("image.tar");
    let e = build_platform_images(&platforms(&s), &destination(&file.display().to_string()), &options(&s)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidArgument);
    assert!(e.message.contains("a docker-archive holds the image of one platform"), "{}", e.message);
    assert!(e.message.contains("x86_64-linux, aarch64-linux") && e.message.contains("oci:DIR"), "{}", e.message);
    assert!(!file.exists());
    build_platform_images(&platforms(&s)[1..], &destination(&file.display().to_string()), &options(&s)).unwrap();
    let bytes = fs::read(&file).unwrap();
    let mut config = None;
    for e in tar::Archive::new(&bytes[..]).entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".json") && name != "manifest.json" {
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            config = Some(serde_json::from_slice::<Value>(&data).unwrap());
        }
    }
    let config = config.expect("a config");
    assert_eq!((config["architecture"].as_str(), config["variant"].as_str()), (Some("arm64"), Some("v8")));
}

#[test]
fn bad_platforms_are_named_and_leave_nothing() {
    let s = make_store();
    let dir = s.dir.path().join("layout");
    let dest = destination(&format!("oci:{}", dir.display()));
    let o = options(&s);
    let refused = |given: &[PlatformItem], kind: ErrorKind, needles: &[&str]| {
        let e = build_platform_images(given, &dest, &o).unwrap_err();
        assert_eq!(e.kind, kind, "{}", e.message);
        for needle in needles {
            assert!(e.message.contains(needle), "{needle}: {}", e.message);
        }
        assert!(!dir.exists(), "{}", e.message);
    };
    refused(&[], ErrorKind::InvalidArgument, &["no platform given"]);
    let mut twice = platforms(&s);
    twice[1].system = "x86_64-linux-gnu".into();
    refused(&twice, ErrorKind::InvalidArgument, &["x86_64-linux-gnu=", "linux/amd64 is given twice", "'x86_64-linux'"]);
    let mut unknown = platforms(&s);
    unknown[1].system = "sparc-linux".into();
    refused(&unknown, ErrorKind::InvalidArgument, &["platform 'sparc-linux=", "unsupported", "powerpc64le-linux"]);
    let mut missing = platforms(&s);
    missing[1].item = s.store.join(format!("{HASH_ARM}-hello-2.0"));
    refused(&missing, ErrorKind::Io, &["hello-2.0", "does not exist"]);
    let mut outside = platforms(&s);
    outside[0].item = PathBuf::from("/tmp/hello");
    refused(&outside, ErrorKind::InvalidStorePath, &["/tmp/hello"]);
}

#[test]
fn progress_counts_every_platform_to_one_total() {
    let s = make_store();
    let seen = Arc::new(Mutex::new(Vec::<Progress>::new()));
    let mut o = options(&s);
    let sink = Arc::clone(&seen);
    o.set_progress(Some(Arc::new(move |p| sink.lock().unwrap().push(p))));
    let dir = s.dir.path().join("layout");
    build_platform_images(&platforms(&s), &destination(&format!("oci:{}", dir.display())), &o).unwrap();
    let seen = seen.lock().unwrap();
    let last = *seen.last().unwrap();
    assert_eq!(last.bytes_done, last.bytes_total);
    // Both closures: hello and greeting, twice.
    assert_eq!((last.items_done, last.items_total), (4, 4));
    assert!(seen.iter().all(|p| p.bytes_total == last.bytes_total && p.items_total == 4));
    assert!(seen.windows(2).all(|w| w[0].bytes_done <= w[1].bytes_done && w[0].items_done <= w[1].items_done));
    // The total is both images' layers: more than the data item twice.
    assert!(last.bytes_total > 400_000, "{last:?}");
}
