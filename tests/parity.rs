//! What a `guix pack -f docker` image has, ours has too, on the sample
//! store: `/tmp` and the name after the profile's packages from the command
//! line, the store database with `--localstatedir` (from the CLI and the
//! library), and history comments that say what each layer holds.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use guix_docker_native::closure::compute_closure;
use guix_docker_native::store::StoreDir;
use guix_docker_native::{build_docker_image, ErrorKind, ImageOptions, Output};
use serde_json::Value;

/// The sample store in a temporary directory.
struct Sample {
    tmp: tempfile::TempDir,
    store: PathBuf,
    database: PathBuf,
    profile: PathBuf,
}

fn sample() -> Sample {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let output = Command::new(env!("CARGO_BIN_EXE_gdn-sample-store")).arg(&dir).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let profile = PathBuf::from(String::from_utf8(output.stdout).unwrap().trim());
    Sample { store: dir.join("gnu/store"), database: dir.join("var/guix/db/db.sqlite"), profile, tmp }
}

impl Sample {
    fn options(&self) -> ImageOptions {
        let mut o = ImageOptions::new();
        o.set_store_dir(&self.store).unwrap();
        o.set_database(&self.database).unwrap();
        o
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// The CLI on the sample store, with `TMPDIR` set to `tmpdir`.
    fn cli(&self, args: &[&str], tmpdir: &Path) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_guix-docker-native"))
            .arg("--store-dir")
            .arg(&self.store)
            .arg("--database")
            .arg(&self.database)
            .args(args)
            .arg(&self.profile)
            .env("TMPDIR", tmpdir)
            .output()
            .unwrap()
    }
}

/// The members of a tar, by name.
fn members(tar_bytes: &[u8]) -> BTreeMap<String, (tar::EntryType, u32, Vec<u8>, Option<String>)> {
    let mut out = BTreeMap::new();
    for e in tar::Archive::new(tar_bytes).entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().trim_end_matches('/').to_string();
        let kind = e.header().entry_type();
        let mode = e.header().mode().unwrap();
        let link = e.link_name().unwrap().map(|l| l.to_string_lossy().into_owned());
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.insert(name, (kind, mode, data, link));
    }
    out
}

/// The config and the layers (each a map of its members) of an archive.
fn image(archive: &Path) -> (Value, Vec<BTreeMap<String, (tar::EntryType, u32, Vec<u8>, Option<String>)>>) {
    let outer = members(&std::fs::read(archive).unwrap());
    let manifest: Value = serde_json::from_slice(&outer["manifest.json"].2).unwrap();
    let config: Value = serde_json::from_slice(&outer[manifest[0]["Config"].as_str().unwrap()].2).unwrap();
    let layers = manifest[0]["Layers"].as_array().unwrap().iter().map(|l| members(&outer[l.as_str().unwrap()].2)).collect();
    (config, layers)
}

fn comments(config: &Value) -> Vec<String> {
    config["history"].as_array().unwrap().iter().map(|h| h["comment"].as_str().unwrap().to_string()).collect()
}

fn tags(archive: &Path) -> Value {
    let outer = members(&std::fs::read(archive).unwrap());
    let manifest: Value = serde_json::from_slice(&outer["manifest.json"].2).unwrap();
    manifest[0]["RepoTags"].clone()
}

/// path -> (hash, narSize, registrationTime, deriver, references) of the
/// items `wanted` (all when None) in the database `file`.
type Rows = BTreeMap<String, (String, i64, i64, Option<String>, Vec<String>)>;
fn rows(file: &Path, wanted: Option<&[String]>) -> Rows {
    let c = rusqlite::Connection::open_with_flags(file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut out = BTreeMap::new();
    let mut paths = c.prepare("SELECT id, path, hash, narSize, registrationTime, deriver FROM ValidPaths").unwrap();
    let mut refs = c
        .prepare("SELECT v.path FROM Refs r JOIN ValidPaths v ON v.id = r.reference WHERE r.referrer = ?1 ORDER BY v.path")
        .unwrap();
    let all: Vec<(i64, String, String, i64, i64, Option<String>)> = paths
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    for (id, path, hash, size, time, deriver) in all {
        if wanted.is_some_and(|w| !w.contains(&path)) {
            continue;
        }
        let references: Vec<String> = refs.query_map([id], |r| r.get(0)).unwrap().collect::<rusqlite::Result<_>>().unwrap();
        out.insert(path, (hash, size, time, deriver, references));
    }
    out
}

fn closure_paths(s: &Sample) -> Vec<String> {
    let store = StoreDir::new(&s.store).unwrap();
    let root = store.parse_item(&s.profile).unwrap();
    let closure = compute_closure(&store, &[root], Some(&s.database)).unwrap();
    closure.items.iter().map(|i| i.path.to_str().unwrap().to_string()).collect()
}

/// Checks what `--localstatedir` puts in `layer`, against the source.
fn check_local_state(s: &Sample, layer: &BTreeMap<String, (tar::EntryType, u32, Vec<u8>, Option<String>)>) {
    let (kind, mode, data, _) = &layer["var/guix/db/db.sqlite"];
    assert_eq!((*kind, *mode), (tar::EntryType::Regular, 0o644));
    let unpacked = s.path(&format!("unpacked-{}.sqlite", data.len()));
    std::fs::write(&unpacked, data).unwrap();
    let closure = closure_paths(s);
    assert_eq!(closure.len(), 4, "the sample profile's closure");
    let source = rows(&s.database, Some(&closure));
    let image = rows(&unpacked, None);
    assert_eq!(image.keys().collect::<Vec<_>>(), closure.iter().collect::<Vec<_>>(), "exactly the closure");
    assert_eq!(image, source, "each row's hash, size, registration and references are the source's");
    assert!(!rows(&s.database, None).keys().all(|p| closure.contains(p)), "the source has more than the closure");
    let link = |name: &str| {
        let (kind, _, _, link) = &layer[name];
        assert_eq!(*kind, tar::EntryType::Symlink, "{name}");
        link.clone().unwrap()
    };
    let root = "var/guix/profiles/per-user/root";
    assert_eq!(link(&format!("{root}/guix-profile-1-link")), s.profile.to_str().unwrap());
    assert_eq!(link(&format!("{root}/guix-profile")), "guix-profile-1-link");
    assert_eq!(link("var/guix/gcroots/profiles"), "/var/guix/profiles");
    for dir in ["var/guix/db", "var/guix/profiles", "var/guix/gcroots", root] {
        assert_eq!((layer[dir].0, layer[dir].1), (tar::EntryType::Directory, 0o755), "{dir}");
    }
}

#[test]
fn localstatedir_from_the_library_registers_exactly_the_closure() {
    let s = sample();
    let mut o = s.options();
    o.set_localstatedir(true);
    let out = s.path("db.tar");
    build_docker_image(&[s.profile.clone()], None, &Output::Path(out.clone()), &o).unwrap();
    let (config, layers) = image(&out);
    assert_eq!(layers.len(), 1);
    check_local_state(&s, &layers[0]);
    let comment = &comments(&config)[0];
    assert!(comment.ends_with("; the store database /var/guix/db/db.sqlite and root's profile as a GC root"), "{comment}");
    // The same bytes again; with several layers the database is on top.
    let again = s.path("again.tar");
    build_docker_image(&[s.profile.clone()], None, &Output::Path(again.clone()), &o).unwrap();
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&again).unwrap(), "two builds differ");
    o.set_max_layers(10).unwrap();
    build_docker_image(&[s.profile.clone()], None, &Output::Path(again.clone()), &o).unwrap();
    let (config, layers) = image(&again);
    assert_eq!(layers.len(), 5, "four items and the database");
    check_local_state(&s, layers.last().unwrap());
    assert_eq!(
        comments(&config).last().unwrap(),
        "the store database /var/guix/db/db.sqlite and root's profile as a GC root"
    );
}

#[test]
fn localstatedir_from_the_cli_same_image_and_no_temporary_file_left() {
    let s = sample();
    let tmpdir = s.path("tmpdir");
    std::fs::create_dir(&tmpdir).unwrap();
    let out = s.path("cli.tar");
    let run = s.cli(&["--localstatedir", "--no-tmp", "-o", out.to_str().unwrap()], &tmpdir);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let (_, layers) = image(&out);
    check_local_state(&s, &layers[0]);
    assert_eq!(std::fs::read_dir(&tmpdir).unwrap().count(), 0, "the temporary database is gone");
    // The library with the CLI's default tag gives the same bytes.
    let mut o = s.options();
    o.set_localstatedir(true);
    o.add_tag("hello").unwrap();
    let lib = s.path("lib.tar");
    build_docker_image(&[s.profile.clone()], None, &Output::Path(lib.clone()), &o).unwrap();
    assert!(std::fs::read(&out).unwrap() == std::fs::read(&lib).unwrap(), "CLI and library images differ");
    // A failure after the database is made leaves nothing either.
    let missing = s.path("no-such-dir/x.tar");
    let run = s.cli(&["--localstatedir", "-o", missing.to_str().unwrap()], &tmpdir);
    assert_eq!(run.status.code(), Some(7), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(std::fs::read_dir(&tmpdir).unwrap().count(), 0, "the temporary database is gone after a failure");
}

#[test]
fn localstatedir_without_a_database_is_refused_and_leaves_nothing() {
    let s = sample();
    let mut o = ImageOptions::new();
    o.set_store_dir(&s.store).unwrap();
    o.set_localstatedir(true);
    let dir = s.path("out");
    std::fs::create_dir(&dir).unwrap();
    let err = build_docker_image(&[s.profile.clone()], None, &Output::Path(dir.join("x.tar")), &o).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidArgument);
    assert!(err.message.contains("localstatedir") && err.message.contains("no store database was given"), "{}", err.message);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    let run = Command::new(env!("CARGO_BIN_EXE_guix-docker-native"))
        .arg("--store-dir")
        .arg(&s.store)
        .args(["--localstatedir", "-o"])
        .arg(dir.join("x.tar"))
        .arg(&s.profile)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.starts_with("guix-docker-native: error: localstatedir:"), "{stderr}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

#[test]
fn the_cli_default_image_has_tmp_and_the_packages_name() {
    let s = sample();
    let tmpdir = s.path("tmpdir");
    std::fs::create_dir(&tmpdir).unwrap();
    let out = s.path("default.tar");
    let run = s.cli(&["-o", out.to_str().unwrap()], &tmpdir);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    // The sample profile's manifest lists hello.
    assert_eq!(tags(&out), serde_json::json!(["hello:latest"]));
    let (config, layers) = image(&out);
    let (kind, mode, _, _) = &layers[0]["tmp"];
    assert_eq!((*kind, *mode), (tar::EntryType::Directory, 0o1777));
    let comment = &comments(&config)[0];
    assert!(comment.ends_with("; directory /tmp") && !comment.contains("extra"), "{comment}");

    let run = s.cli(&["--no-tmp", "--image-tag", "gdn/parity:1", "-o", out.to_str().unwrap()], &tmpdir);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert_eq!(tags(&out), serde_json::json!(["gdn/parity:1"]));
    let (config, layers) = image(&out);
    // Outside the store, only the store directory's parents (which may
    // include /tmp, mode 0755, when the sample store is under /tmp).
    let store = s.store.to_str().unwrap().trim_start_matches('/').to_string();
    let parents: Vec<String> =
        Path::new(&store).ancestors().filter(|a| !a.as_os_str().is_empty()).map(|a| a.to_str().unwrap().to_string()).collect();
    let outside: Vec<&String> = layers[0].keys().filter(|k| !k.starts_with(&format!("{store}/"))).collect();
    assert_eq!(outside.len(), parents.len(), "--no-tmp: only the store's parents: {outside:?}");
    assert!(outside.iter().all(|k| parents.contains(k) && layers[0][*k].1 == 0o755), "{outside:?}");
    let comment = &comments(&config)[0];
    assert!(!comment.contains(';') && !comment.contains("extra"), "no extras, none named: {comment}");
}

#[test]
fn history_comments_say_what_each_layer_holds() {
    let s = sample();
    let out = s.path("layers.tar");
    let tmpdir = s.path("tmpdir");
    std::fs::create_dir(&tmpdir).unwrap();
    let conf = s.path("app.conf");
    std::fs::write(&conf, "key = value\n").unwrap();
    let file = format!("/etc/app.conf={}", conf.display());
    let run = s.cli(
        &["--max-layers", "10", "-S", "/bin=bin", "-S", "/share=share", "--directory", "/srv=750:1:2", "--file", &file, "-o", out.to_str().unwrap()],
        &tmpdir,
    );
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let (config, layers) = image(&out);
    let layer_comments = comments(&config);
    assert_eq!(layer_comments.len(), 5);
    let names: Vec<String> =
        closure_paths(&s).iter().map(|p| Path::new(p).file_name().unwrap().to_str().unwrap()[33..].to_string()).collect();
    let mut item_comments = layer_comments[..4].to_vec();
    item_comments.sort();
    let mut expected = names.clone();
    expected.sort();
    assert_eq!(item_comments, expected, "a layer per item, named after it alone");
    assert_eq!(layer_comments[4], "directories /srv, /tmp; symlinks /bin, /share; file /etc/app.conf");
    assert_eq!(layers[4]["srv"].1, 0o750);
    assert_eq!(layers[4]["etc/app.conf"].2, b"key = value\n");

    // One layer: the items, then the extras.
    let run = s.cli(&["-S", "/bin=bin", "-o", out.to_str().unwrap()], &tmpdir);
    assert!(run.status.success());
    let (config, _) = image(&out);
    let comment = &comments(&config)[0];
    assert!(comment.contains(", and 1 more store items; directory /tmp; symlink /bin"), "{comment}");
}
