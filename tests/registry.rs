//! Pushes to real registries (Debian's `docker-registry`, started by the
//! tests on loopback), checked with the tools users check them with:
//! `skopeo inspect`, `skopeo copy docker://… oci:…` and `umoci unpack`.

mod registry_support;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use guix_docker_native::{build_image, Destination, ImageOptions, LayerState, PushReport};
use registry_support::{have, tree, CuttingProxy, RefusingProxy, Registry, SampleStore, ScriptRegistry, Tmpfs};
use serde_json::Value;

const PROGRAM: &str = env!("CARGO_BIN_EXE_guix-docker-native");

fn tools() -> bool {
    have("docker-registry") && have("skopeo") && have("umoci") && have("openssl") && have("htpasswd")
}

/// Runs the program on the sample store's profile with `args`, no auth
/// file of the machine's in sight, and the layer cache of the store's own
/// (so that a second push of one store is warm, as it is for a user).
fn push(store: &SampleStore, args: &[&str]) -> Output {
    push_with(store, args, &[])
}

/// [`push`] with environment variables `env`.
fn push_with(store: &SampleStore, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let nowhere = store.dir.path().join("no-auth-files");
    let mut command = Command::new(PROGRAM);
    command
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        .env("XDG_CONFIG_HOME", &nowhere)
        .env("DOCKER_CONFIG", &nowhere)
        .env("XDG_CACHE_HOME", store.dir.path().join("cache"));
    for (name, value) in env {
        command.env(name, value);
    }
    command
        .arg("--store-dir")
        .arg(&store.store)
        .arg("--database")
        .arg(&store.database)
        .args(["--entry-point", "bin/hello"])
        .args(args)
        .arg(&store.profile)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "{}", text(&out));
    out
}

/// `skopeo inspect [--raw] docker://…` as JSON.
fn inspect(registry: &Registry, reference: &str, raw: bool) -> Option<Value> {
    let mut args = vec!["inspect".to_string()];
    if raw {
        args.push("--raw".into());
    }
    args.extend(registry.skopeo_options(""));
    args.push(format!("docker://{}/{reference}", registry.host));
    let out = Command::new("skopeo").args(&args).output().unwrap();
    out.status.success().then(|| serde_json::from_slice(&out.stdout).unwrap())
}

/// The image `reference` copied out with skopeo and unpacked by umoci:
/// its root's store equals the sample store's, item for item, file for file.
fn check_unpacks_to_the_store(registry: &Registry, reference: &str, store: &SampleStore) {
    check_unpacks_from(&registry.host, registry.skopeo_options("src-"), reference, store);
}

/// [`check_unpacks_to_the_store`] from the registry at `host`, reached
/// with skopeo's (source) `options`.
fn check_unpacks_from(host: &str, options: Vec<String>, reference: &str, store: &SampleStore) {
    let work = tempfile::tempdir().unwrap();
    let layout = format!("oci:{}:img", work.path().join("layout").display());
    let mut args = vec!["copy".to_string()];
    args.extend(options);
    args.push(format!("docker://{host}/{reference}"));
    args.push(layout);
    let out = Command::new("skopeo").args(&args).output().unwrap();
    assert!(out.status.success(), "skopeo copy: {}", text(&out));
    let bundle = work.path().join("bundle");
    let out = Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:img", work.path().join("layout").display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(out.status.success(), "umoci unpack: {}", text(&out));
    let unpacked_store = bundle.join("rootfs").join(store.store.strip_prefix("/").unwrap());
    let items: Vec<_> = std::fs::read_dir(&unpacked_store).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(items.len() >= 3, "{items:?}");
    for item in items {
        assert_eq!(tree(&unpacked_store.join(&item)), tree(&store.store.join(&item)), "{item:?}");
    }
    assert!(bundle.join("rootfs/tmp").is_dir());
}

fn dest(registry: &Registry, repository: &str) -> String {
    format!("docker://{}/{repository}", registry.host)
}

#[test]
fn push_to_a_plain_registry_then_again_uploads_nothing() {
    if !tools() {
        return;
    }
    let registry = Registry::plain();
    let store = SampleStore::new();
    let d = dest(&registry, "guix/hello");
    let out = ok(push(&store, &["-C", "gzip", "--max-layers", "3", "-t", "hello:2.12", "-t", "hello:latest", "--tls-verify=false", "-o", &d]));
    // The references pushed, one a line.
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{d}:2.12\n{d}:latest\n"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("3 uploaded, 0 already there") || stderr.contains("uploaded, 0 already there"), "{stderr}");

    let info = inspect(&registry, "guix/hello:2.12", false).expect("skopeo inspects the image");
    let mut tags: Vec<&str> = info["RepoTags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    tags.sort();
    assert_eq!(tags, ["2.12", "latest"]);
    let raw = inspect(&registry, "guix/hello:latest", true).unwrap();
    assert_eq!(raw["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(raw["config"]["mediaType"], "application/vnd.oci.image.config.v1+json");
    let layers = raw["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3);
    for layer in layers {
        assert_eq!(layer["mediaType"], "application/vnd.oci.image.layer.v1.tar+gzip");
    }
    assert_eq!(raw["annotations"]["org.opencontainers.image.title"], "profile");
    check_unpacks_to_the_store(&registry, "guix/hello:2.12", &store);

    // Again: every blob is found, none is sent.
    let uploads = registry.requests("POST", "/blobs/uploads/");
    let out = ok(push(&store, &["-C", "gzip", "--max-layers", "3", "-t", "hello:2.12", "--tls-verify=false", "-o", &d]));
    assert_eq!(registry.requests("POST", "/blobs/uploads/"), uploads, "{}", registry.log());
    assert_eq!(registry.requests("PATCH", "/blobs/uploads/"), 0, "small layers go up in one PUT");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("(3 layers: 0 uploaded, 3 already there, 0 mounted; config already there)"), "{stderr}");
    // The same image: the same manifest.
    assert_eq!(inspect(&registry, "guix/hello:2.12", true).unwrap(), raw);
}

/// A file of `mib` MiB that does not compress, for a layer sent in chunks.
fn big_file(dir: &Path, mib: usize) -> std::path::PathBuf {
    use sha2::Digest;
    let path = dir.join("big.bin");
    let mut data = Vec::with_capacity(mib << 20);
    let mut block = sha2::Sha256::digest(b"seed").to_vec();
    while data.len() < mib << 20 {
        block = sha2::Sha256::digest(&block).to_vec();
        data.extend_from_slice(&block);
    }
    std::fs::write(&path, data).unwrap();
    path
}

/// A layer larger than a chunk goes up in PATCHes as it is made; with no
/// digest known before, a second push sends it again (the small ones not).
#[test]
fn a_large_layer_goes_up_in_chunks() {
    if !tools() {
        return;
    }
    let registry = Registry::plain();
    let store = SampleStore::new();
    let big = big_file(store.dir.path(), 20);
    let file = format!("/data/big.bin={}", big.display());
    let d = format!("{}:1", dest(&registry, "big"));
    let args = ["-C", "gzip", "--max-layers", "3", "--file", &file, "--tls-verify=false", "-o", &d];
    ok(push(&store, &args));
    // 20 MiB in 8 MiB chunks: two PATCHes, the rest with the PUT.
    assert_eq!(registry.requests("PATCH", "big/blobs/uploads/"), 2, "{}", registry.log());
    let raw = inspect(&registry, "big:1", true).unwrap();
    let sizes: Vec<u64> = raw["layers"].as_array().unwrap().iter().map(|l| l["size"].as_u64().unwrap()).collect();
    assert!(sizes.iter().any(|&s| s > 20 << 20), "{sizes:?}");
    check_unpacks_to_the_store(&registry, "big:1", &store);

    let out = ok(push(&store, &args));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("(3 layers: 1 uploaded, 2 already there, 0 mounted; config already there)"), "{stderr}");
    assert_eq!(registry.requests("PATCH", "big/blobs/uploads/"), 4);
    assert_eq!(inspect(&registry, "big:1", true).unwrap(), raw);
}

#[test]
fn docker_schema_2_manifests_and_zstd_refused_with_them() {
    if !tools() {
        return;
    }
    let registry = Registry::plain();
    let store = SampleStore::new();
    let d = format!("{}:v2", dest(&registry, "app"));
    ok(push(&store, &["-C", "gzip", "--manifest-format", "docker", "--tls-verify=false", "-o", &d]));
    let raw = inspect(&registry, "app:v2", true).unwrap();
    assert_eq!(raw["mediaType"], "application/vnd.docker.distribution.manifest.v2+json");
    assert_eq!(raw["config"]["mediaType"], "application/vnd.docker.container.image.v1+json");
    assert_eq!(raw["layers"][0]["mediaType"], "application/vnd.docker.image.rootfs.diff.tar.gzip");
    check_unpacks_to_the_store(&registry, "app:v2", &store);

    let out = push(&store, &["-C", "zstd", "--manifest-format", "docker", "--tls-verify=false", "-o", &format!("{}:z", dest(&registry, "app"))]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no zstd layers"), "{}", text(&out));
    assert!(inspect(&registry, "app:z", true).is_none(), "nothing pushed");

    // zstd in an OCI manifest.
    ok(push(&store, &["-C", "zstd", "--tls-verify=false", "-o", &format!("{}:zstd", dest(&registry, "app"))]));
    let raw = inspect(&registry, "app:zstd", true).unwrap();
    assert_eq!(raw["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar+zstd");
}

#[test]
fn tls_with_a_private_ca_and_basic_authentication() {
    if !tools() {
        return;
    }
    let registry = Registry::tls_htpasswd();
    let store = SampleStore::new();
    let (user, password) = registry.user.clone().unwrap();
    let cert_dir = registry.cert_dir.clone().unwrap();
    let cert_dir = cert_dir.to_str().unwrap();
    let d = format!("{}:1", dest(&registry, "secure/app"));
    let creds = format!("{user}:{password}");
    let mut outputs = Vec::new();

    // Without the CA: the certificate is not trusted.
    let out = push(&store, &["--creds", &creds, "-o", &d]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let message = text(&out);
    assert!(message.contains(&format!("registry {}, repository secure/app", registry.host)), "{message}");
    assert!(message.to_lowercase().contains("certificate") || message.contains("UnknownIssuer"), "{message}");
    outputs.push(out);

    // No credentials: a 401 that says where they were looked for.
    let out = push(&store, &["--cert-dir", cert_dir, "-o", &d]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let message = text(&out);
    assert!(message.contains("HTTP 401") && message.contains("no credentials for 127.0.0.1:"), "{message}");
    assert!(message.contains("--creds (not given)") && message.contains("~/.docker/config.json") || message.contains("$DOCKER_CONFIG"), "{message}");
    outputs.push(out);

    // The right ones.
    let out = ok(push(&store, &["--cert-dir", cert_dir, "--creds", &creds, "-C", "gzip", "-o", &d]));
    outputs.push(out);
    let before = inspect(&registry, "secure/app:1", true).expect("pushed");
    check_unpacks_to_the_store(&registry, "secure/app:1", &store);

    // A wrong password: refused, naming the user and where it came from;
    // the tag does not move (another image would have other layers).
    let out = push(&store, &["--cert-dir", cert_dir, "--creds", &format!("{user}:wrong-{password}"), "--max-layers", "2", "-o", &d]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let message = text(&out);
    assert!(message.contains("HTTP 401") && message.contains(&format!("user '{user}'")), "{message}");
    assert!(message.contains(&format!("registry {}, repository secure/app", registry.host)), "{message}");
    outputs.push(out);
    assert_eq!(inspect(&registry, "secure/app:1", true).unwrap(), before);

    // The system's roots, as OpenSSL finds them: here SSL_CERT_FILE names the CA.
    let ca = registry.cert_dir.clone().unwrap().join("ca.crt");
    let out = ok(push_with(&store, &["--creds", &creds, "-o", &format!("{}:3", dest(&registry, "secure/app"))], &[("SSL_CERT_FILE", &ca)]));
    assert!(inspect(&registry, "secure/app:3", true).is_some());
    outputs.push(out);

    // Credentials from an auth file, as podman and skopeo read them.
    let auth = store.dir.path().join("auth.json");
    let encoded = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    };
    std::fs::write(&auth, format!(r#"{{"auths":{{"{}":{{"auth":"{encoded}"}}}}}}"#, registry.host)).unwrap();
    let out = ok(push_with(&store, &["--cert-dir", cert_dir, "-t", "x:2", "-o", &dest(&registry, "secure/app")], &[("REGISTRY_AUTH_FILE", &auth)]));
    assert!(inspect(&registry, "secure/app:2", true).is_some());
    outputs.push(out);

    // Secrets appear nowhere.
    for out in &outputs {
        assert!(!text(out).contains(&password), "{}", text(out));
    }
}

#[test]
fn errors_name_the_registry_and_the_repository() {
    if !tools() {
        return;
    }
    let store = SampleStore::new();
    // Nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = push(&store, &["--tls-verify=false", "-o", &format!("docker://127.0.0.1:{port}/app:1")]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let message = text(&out);
    assert!(message.contains(&format!("registry 127.0.0.1:{port}, repository app: cannot reach the registry")), "{message}");

    // Names the registry would refuse are refused before anything is made.
    for (bad, why) in [
        ("docker://127.0.0.1:5000/App", "component 'App'"),
        ("docker://127.0.0.1:5000/app:-1", "tag '-1'"),
        ("docker://127.0.0.1:5000/", "no repository"),
    ] {
        let out = push(&store, &["-o", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", text(&out));
        assert!(text(&out).contains(why) && text(&out).contains(&format!("output '{bad}'")), "{bad}: {}", text(&out));
    }
}

#[test]
fn connections_cut_on_the_way_are_retried() {
    if !tools() {
        return;
    }
    let registry = Registry::plain();
    let proxy = CuttingProxy::new(&registry.host, 2);
    let store = SampleStore::new();
    let big = big_file(store.dir.path(), 20);
    let file = format!("/data/big.bin={}", big.display());
    let d = format!("docker://{}/flaky:1", proxy.host);
    ok(push(&store, &["-C", "gzip", "--max-layers", "4", "--jobs", "2", "--file", &file, "--tls-verify=false", "-o", &d]));
    assert!(proxy.cut.load(std::sync::atomic::Ordering::Relaxed) > 0, "the proxy cut connections");
    check_unpacks_to_the_store(&registry, "flaky:1", &store);
    assert!(registry.requests("PATCH", "flaky/blobs/uploads/") >= 2);
}

/// The bearer-token flow against a registry with `auth: token`, whose
/// tokens come from the test issuer (tests/lib/registry.sh).
#[test]
fn bearer_tokens_from_the_realm() {
    if !tools() || !have("python3") || !have("curl") {
        return;
    }
    let registry = ScriptRegistry::start("token");
    let store = SampleStore::new();
    let d = format!("docker://{}/tok/app:1", registry.addr);
    let cert_dir = registry.dir.join("certs");
    let cert_dir = cert_dir.to_str().unwrap();
    let creds = format!("{}:{}", registry.user, registry.password);
    let out = ok(push(&store, &["--cert-dir", cert_dir, "--creds", &creds, "-C", "gzip", "--max-layers", "2", "-o", &d]));
    assert!(!text(&out).contains(&registry.password));
    let mut args = vec!["inspect".to_string(), "--raw".into(), format!("--cert-dir={cert_dir}"), format!("--creds={creds}")];
    args.push(format!("docker://{}/tok/app:1", registry.addr));
    let out = Command::new("skopeo").args(&args).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let raw: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(raw["layers"].as_array().unwrap().len(), 2);

    // A wrong password: the realm refuses it, and says so.
    let out = push(&store, &["--cert-dir", cert_dir, "--creds", &format!("{}:nope", registry.user), "-o", &d]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let message = text(&out);
    assert!(message.contains("token from the realm") && message.contains(&format!("user '{}'", registry.user)), "{message}");
    assert!(!message.contains(&registry.password));
}

/// A registry that goes away in the middle of a push: the push retries,
/// then fails naming the registry and the repository, and the tag still
/// names the image it named.
#[test]
fn a_push_that_fails_midway_moves_no_tag() {
    if !tools() {
        return;
    }
    let registry = Registry::plain();
    let store = SampleStore::new();
    ok(push(&store, &["-C", "gzip", "--tls-verify=false", "-o", &format!("{}:t", dest(&registry, "app"))]));
    let before = inspect(&registry, "app:t", true).unwrap();
    // Another image (another layer), through a proxy that lets 12 MiB of
    // requests through, in the middle of the 20 MiB layer, then cuts
    // every connection.
    let proxy = CuttingProxy::dying(&registry.host, 12 << 20);
    let big = big_file(store.dir.path(), 20);
    let file = format!("/data/big.bin={}", big.display());
    let d = format!("docker://{}/app:t", proxy.host);
    let out = push(&store, &["-C", "gzip", "--max-layers", "2", "--jobs", "1", "--file", &file, "--tls-verify=false", "-o", &d]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let message = text(&out);
    assert!(message.contains(&format!("registry {}, repository app: ", proxy.host)) && message.contains("tries"), "{message}");
    eprintln!("{message}");
    assert_eq!(inspect(&registry, "app:t", true).unwrap(), before, "the tag did not move");
}

/// A multi-platform image: each platform's blobs and manifest, then the
/// index naming them, under the tag; a layer both platforms share goes up
/// once.
#[test]
fn a_multi_platform_image_is_pushed_as_an_index() {
    use std::os::unix::fs::PermissionsExt;
    if !tools() {
        return;
    }
    let registry = Registry::plain();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("gnu/store");
    let data = store.join("0a1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r-greeting-1.0");
    std::fs::create_dir_all(data.join("share")).unwrap();
    std::fs::write(data.join("share/message.txt"), vec![b'g'; 200_000]).unwrap();
    let hello = |hash: &str, program: &str| {
        let item = store.join(format!("{hash}-hello-1.0"));
        std::fs::create_dir_all(item.join("bin")).unwrap();
        let file = item.join("bin/hello");
        std::fs::write(&file, format!("{program}\n{}/share/message.txt\n", data.display())).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
        item
    };
    let (x86, arm) = (hello("1zyxwvsrqpnmlkjihgfdcba987654321", "x86"), hello("2abcdfghijklmnpqrsvwxyz012345678", "arm"));
    let mut options = ImageOptions::new();
    options.set_cache_dir(&dir.path().join("cache")).unwrap();
    options.set_store_dir(&store).unwrap();
    options.set_entry_point("bin/hello").unwrap();
    options.set_max_layers(10).unwrap();
    options.set_compression(guix_docker_native::Compression::Gzip, None).unwrap();
    options.set_tls_verify(false);
    let last = Arc::new(Mutex::new(PushReport::default()));
    let seen = Arc::clone(&last);
    options.set_push_progress(Some(Arc::new(move |r: &PushReport| *seen.lock().unwrap() = r.clone())));
    let platforms = [
        guix_docker_native::PlatformItem { system: "x86_64-linux".into(), item: x86, closure: None },
        guix_docker_native::PlatformItem { system: "aarch64-linux".into(), item: arm, closure: None },
    ];
    let destination = guix_docker_native::parse_destination(format!("{}:1", dest(&registry, "multi")).as_ref()).unwrap();
    guix_docker_native::build_platform_images(&platforms, &destination, &options).unwrap();

    let index = inspect(&registry, "multi:1", true).unwrap();
    assert_eq!(index["mediaType"], "application/vnd.oci.image.index.v1+json");
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 2);
    assert_eq!(manifests[0]["platform"]["architecture"], "amd64");
    assert_eq!(manifests[1]["platform"], serde_json::json!({"architecture": "arm64", "os": "linux", "variant": "v8"}));
    let mut args = vec!["--override-arch".to_string(), "arm64".into(), "--override-variant".into(), "v8".into(), "inspect".into()];
    args.extend(registry.skopeo_options(""));
    args.push(format!("docker://{}/multi:1", registry.host));
    let out = Command::new("skopeo").args(&args).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let arm_info: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(arm_info["Architecture"], "arm64");
    // The greeting's layer, the same bytes in both images, went up once.
    let report = last.lock().unwrap().clone();
    let skipped = report.layers.iter().filter(|l| l.state == LayerState::Skipped).count();
    assert!(skipped >= 1, "{report:?}");
    let digests: Vec<&Value> = manifests.iter().map(|m| &m["digest"]).collect();
    for digest in digests {
        let d = digest.as_str().unwrap();
        assert!(inspect(&registry, &format!("multi@{d}"), true).is_some(), "{d} is there by its digest");
    }
}

/// A blob known to be in another repository is mounted from it, through
/// the library's hint (what a layer cache will give).
#[test]
fn blobs_known_elsewhere_are_mounted() {
    if !tools() {
        return;
    }
    let registry = Registry::plain();
    let store = SampleStore::new();
    ok(push(&store, &["-C", "gzip", "--max-layers", "2", "--tls-verify=false", "-o", &format!("{}:1", dest(&registry, "first"))]));
    let raw = inspect(&registry, "first:1", true).unwrap();

    let mut options = ImageOptions::new();
    // A cache of its own, which knows nothing of the first push: the
    // mounts come from the hints.
    options.set_cache_dir(&store.dir.path().join("another-cache")).unwrap();
    options.set_store_dir(&store.store).unwrap();
    options.set_database(&store.database).unwrap();
    options.set_entry_point("bin/hello").unwrap();
    options.add_directory("/tmp", 0, 0, 0o1777).unwrap();
    options.set_compression(guix_docker_native::Compression::Gzip, None).unwrap();
    options.set_max_layers(2).unwrap();
    options.set_tls_verify(false);
    let mut digests = vec![raw["config"]["digest"].as_str().unwrap().to_string()];
    digests.extend(raw["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()));
    for digest in &digests {
        options.add_mount_hint(digest, "first").unwrap();
    }
    let last = Arc::new(Mutex::new(PushReport::default()));
    let seen = Arc::clone(&last);
    options.set_push_progress(Some(Arc::new(move |r: &PushReport| *seen.lock().unwrap() = r.clone())));
    let destination = guix_docker_native::parse_destination(format!("{}:1", dest(&registry, "second")).as_ref()).unwrap();
    assert!(matches!(destination, Destination::Registry(_)));
    build_image(&[store.profile.clone()], None, &destination, &options).unwrap();
    let report = last.lock().unwrap().clone();
    for layer in &report.layers {
        assert_eq!(layer.state, LayerState::Mounted { from: "first".into() }, "{report:?}");
    }
    assert_eq!(report.config_present, Some(true));
    // The config and the two layers, each mounted, none uploaded.
    assert_eq!(registry.requests("POST", "second/blobs/uploads/?mount="), 3, "{}", registry.log());
    assert_eq!(registry.requests("PUT", "second/blobs/uploads/"), 0, "nothing uploaded");
    assert_eq!(inspect(&registry, "second:1", true).unwrap(), raw);
    check_unpacks_to_the_store(&registry, "second:1", &store);
}

/// The manifest digest `reference` names, by skopeo.
fn digest_of(registry: &Registry, reference: &str) -> String {
    inspect(registry, reference, false).expect("skopeo inspects it")["Digest"].as_str().unwrap().to_string()
}

/// Several tags: the manifest goes up by its digest, then the tags; when
/// one tag cannot be moved, those already moved are put back to what they
/// named, and the error says which tags moved and which did not.
#[test]
fn several_tags_move_together_or_are_put_back() {
    if !tools() {
        return;
    }
    let registry = Registry::plain();
    let store = SampleStore::new();
    let d = format!("{}:t1", dest(&registry, "app"));
    ok(push(&store, &["-C", "gzip", "-t", "x:t2", "-t", "x:t3", "--tls-verify=false", "-o", &d]));
    let old = digest_of(&registry, "app:t1");
    for tag in ["t2", "t3"] {
        assert_eq!(digest_of(&registry, &format!("app:{tag}")), old);
    }

    // Another image (two layers), through a proxy that refuses the PUT of t2.
    let proxy = RefusingProxy::new(&registry.host, 503, |method, path| method == "PUT" && path.ends_with("/manifests/t2"));
    let d = format!("docker://{}/app:t1", proxy.host);
    let out = push(&store, &["-C", "gzip", "--max-layers", "2", "-t", "x:t2", "-t", "x:t3", "--tls-verify=false", "-o", &d]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let message = text(&out);
    eprintln!("{message}");
    assert_eq!(proxy.refused.load(std::sync::atomic::Ordering::Relaxed), 6, "the client tries 6 times (client::ATTEMPTS)");
    assert!(message.contains(&format!("registry {}, repository app: manifest t2: PUT: HTTP 503", proxy.host)), "{message}");
    assert!(message.contains(&format!("tag 't1' was moved to it and put back to {old}")), "{message}");
    assert!(message.contains("tags 't2', 't3' were not moved"), "{message}");
    let new = message.split("in the repository as ").nth(1).expect("the new digest is said").split(';').next().unwrap().to_string();
    assert!(new.starts_with("sha256:") && new != old, "{message}");
    assert!(out.stdout.is_empty(), "no reference printed as pushed");
    for tag in ["t1", "t2", "t3"] {
        assert_eq!(digest_of(&registry, &format!("app:{tag}")), old, "{tag} names the old image");
    }
    // The new image is whole in the repository, by its digest.
    assert_eq!(digest_of(&registry, &format!("app@{new}")), new);
    check_unpacks_to_the_store(&registry, &format!("app@{new}"), &store);

    // A tag that named nothing before cannot be taken back: said so.
    let d = format!("docker://{}/app:fresh", proxy.host);
    let out = push(&store, &["-C", "gzip", "--max-layers", "2", "-t", "x:t2", "--tls-verify=false", "-o", &d]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let message = text(&out);
    assert!(message.contains("tag 'fresh' now names it (it named nothing before"), "{message}");
    assert!(message.contains("tag 't2' was not moved"), "{message}");
    assert_eq!(digest_of(&registry, "app:fresh"), new);
    assert_eq!(digest_of(&registry, "app:t2"), old);
}

/// The registry killed in the middle of a layer's upload and started
/// again a second later (same port, storage and secret): the push retries;
/// when the registry kept part of the chunk it was receiving,
/// distribution 2.8 cannot resume the upload (it cancels it), and the push
/// fails naming the registry, the repository and the layer, the tag still
/// on the image it named; when it did not, the push completes.  Either
/// way a push again gives the whole image.
#[test]
fn a_registry_restarted_in_the_middle_of_a_push() {
    if !tools() || !have("curl") {
        return;
    }
    let registry = ScriptRegistry::start("plain");
    let store = SampleStore::new();
    let d = format!("docker://{}/crash:1", registry.addr);
    ok(push(&store, &["-C", "gzip", "--tls-verify=false", "-o", &d]));
    let skopeo_digest = || {
        let out = Command::new("skopeo").args(["inspect", "--tls-verify=false", &d]).output().unwrap();
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["Digest"].as_str().unwrap().to_string()
    };
    let before = skopeo_digest();
    let big = big_file(store.dir.path(), 40);
    let file = format!("/data/big.bin={}", big.display());
    let nowhere = store.dir.path().join("no-auth-files");
    let child = Command::new(PROGRAM)
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        .env("XDG_CONFIG_HOME", &nowhere)
        .env("DOCKER_CONFIG", &nowhere)
        .arg("--store-dir")
        .arg(&store.store)
        .arg("--database")
        .arg(&store.database)
        .args(["--entry-point", "bin/hello", "-C", "gzip", "--max-layers", "2", "--jobs", "1", "--file", &file])
        .args(["--tls-verify=false", "-o", &d])
        .arg(&store.profile)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the first chunk of the big layer is in, the registry dies.
    let start = std::time::Instant::now();
    while registry.requests("PATCH", "crash/blobs/uploads/") == 0 {
        assert!(start.elapsed() < std::time::Duration::from_secs(120), "no PATCH came: {}", registry.log());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    registry.kill();
    std::thread::sleep(std::time::Duration::from_secs(1));
    registry.restart();
    let out = child.wait_with_output().unwrap();
    let message = text(&out);
    eprintln!("{message}");
    if out.status.success() {
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{d}\n"));
        assert_ne!(skopeo_digest(), before);
    } else {
        assert_eq!(out.status.code(), Some(7), "{message}");
        assert!(message.contains(&format!("registry {}, repository crash: layer ", registry.addr)), "{message}");
        assert_eq!(skopeo_digest(), before, "the tag did not move");
        let args = ["-C", "gzip", "--max-layers", "2", "--jobs", "1", "--file", &file, "--tls-verify=false", "-o", &d];
        ok(push(&store, &args));
    }
    let options = vec!["--src-tls-verify=false".to_string()];
    check_unpacks_from(&registry.addr, options, "crash:1", &store);
}

/// A registry whose disk is full (its storage a 6 MiB tmpfs): the push
/// fails naming the registry, the repository and the layer, and no tag is
/// made.  (Distribution answers the `PATCH` it cannot store before it has
/// read it, and closes: the client sees a broken pipe, not the answer.)
#[test]
fn a_registry_with_a_full_disk() {
    if !tools() || !have("curl") {
        return;
    }
    let mut tmpfs = None;
    let registry = ScriptRegistry::start_prepared("plain", |dir| tmpfs = Tmpfs::mount(&dir.join("storage"), "6m"));
    if tmpfs.is_none() {
        return;
    }
    let store = SampleStore::new();
    let big = big_file(store.dir.path(), 20);
    let file = format!("/data/big.bin={}", big.display());
    let d = format!("docker://{}/full:1", registry.addr);
    let out = push(&store, &["-C", "gzip", "--max-layers", "2", "--jobs", "1", "--file", &file, "--tls-verify=false", "-o", &d]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let message = text(&out);
    eprintln!("{message}");
    assert!(message.contains(&format!("registry {}, repository full: ", registry.addr)), "{message}");
    assert!(message.contains("layer "), "names the layer: {message}");
    assert!(message.contains("PATCH bytes 0-"), "names the request: {message}");
    let out = Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false", &d]).output().unwrap();
    assert!(!out.status.success(), "no tag: {}", text(&out));
}

/// A token realm that refuses: a token granting nothing (no credentials),
/// and a realm that is gone; each fails naming the registry, the
/// repository and what was asked, and says where credentials were looked
/// for; no secret shows.
#[test]
fn a_token_realm_that_refuses() {
    if !tools() || !have("python3") || !have("curl") {
        return;
    }
    let registry = ScriptRegistry::start("token");
    let store = SampleStore::new();
    let d = format!("docker://{}/tok/app:1", registry.addr);
    let cert_dir = registry.dir.join("certs");
    let cert_dir = cert_dir.to_str().unwrap();
    let place = format!("registry {}, repository tok/app: ", registry.addr);

    // No credentials: the realm's token grants no push.
    let out = push(&store, &["--cert-dir", cert_dir, "-C", "gzip", "--max-layers", "2", "-o", &d]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let message = text(&out);
    eprintln!("{message}");
    assert!(message.contains(&place) && message.contains("layer ") && message.contains("HTTP 401"), "{message}");
    assert!(message.contains("no credentials for") && message.contains("--creds (not given)"), "{message}");

    // Wrong password: the realm answers 401, named.
    let out = push(&store, &["--cert-dir", cert_dir, "--creds", &format!("{}:wrong-{}", registry.user, registry.password), "-o", &d]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let message = text(&out);
    assert!(message.contains(&place) && message.contains("token from the realm https://127.0.0.1:"), "{message}");
    assert!(message.contains("HTTP 401") && !message.contains(&registry.password), "{message}");

    // The realm gone.
    registry.kill_issuer();
    let creds = format!("{}:{}", registry.user, registry.password);
    let out = push(&store, &["--cert-dir", cert_dir, "--creds", &creds, "-o", &d]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let message = text(&out);
    eprintln!("{message}");
    assert!(message.contains(&place) && message.contains("token from the realm https://127.0.0.1:"), "{message}");
    assert!(!message.contains(&registry.password), "{message}");
}

/// A registry that requires a client certificate (`http.tls.clientcas`):
/// `--cert-dir` with `client.cert` and `client.key` beside `ca.crt`, as
/// skopeo and docker's certs.d read them.
#[test]
fn client_certificates_from_the_cert_dir() {
    if !tools() || !have("curl") {
        return;
    }
    let registry = ScriptRegistry::start("mtls");
    let store = SampleStore::new();
    let certs = registry.dir.join("certs");
    let d = format!("docker://{}/mtls/app:1", registry.addr);

    // The CA alone: the registry wants a certificate.
    let ca_only = store.dir.path().join("ca-only");
    std::fs::create_dir(&ca_only).unwrap();
    std::fs::copy(certs.join("ca.crt"), ca_only.join("ca.crt")).unwrap();
    let out = push(&store, &["--cert-dir", ca_only.to_str().unwrap(), "-o", &d]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let message = text(&out);
    eprintln!("{message}");
    assert!(message.contains(&format!("registry {}, repository mtls/app: cannot reach the registry", registry.addr)), "{message}");

    // A certificate without its key, a key without its certificate, a key
    // of another certificate: refused before anything is sent.
    let half = store.dir.path().join("half");
    std::fs::create_dir(&half).unwrap();
    std::fs::copy(certs.join("ca.crt"), half.join("ca.crt")).unwrap();
    std::fs::copy(certs.join("client.cert"), half.join("client.cert")).unwrap();
    let out = push(&store, &["--cert-dir", half.to_str().unwrap(), "-o", &d]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("client.cert: a client certificate without its key client.key"), "{}", text(&out));
    std::fs::rename(half.join("client.cert"), half.join("other.cert")).unwrap();
    std::fs::copy(certs.join("client.key"), half.join("client.key")).unwrap();
    let out = push(&store, &["--cert-dir", half.to_str().unwrap(), "-o", &d]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("client.key: a client key without its certificate client.cert"), "{}", text(&out));
    std::fs::rename(half.join("other.cert"), half.join("client.cert")).unwrap();
    std::fs::copy(registry.dir.join("tls/server.key"), half.join("client.key")).unwrap();
    let out = push(&store, &["--cert-dir", half.to_str().unwrap(), "-o", &d]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("client.key: not the key of client.cert"), "{}", text(&out));

    // The pair: pushed, and skopeo (with the same directory) finds it.
    ok(push(&store, &["--cert-dir", certs.to_str().unwrap(), "-C", "gzip", "--max-layers", "2", "-o", &d]));
    let options = vec![format!("--src-cert-dir={}", certs.display())];
    check_unpacks_from(&registry.addr, options, "mtls/app:1", &store);
}

/// The index under a manifest's referrers tag (`sha256-<hex>`), fetched
/// as a client without the referrers API does.
fn referrers_index(registry: &Registry, repository: &str, digest: &str) -> Option<Value> {
    inspect(registry, &format!("{repository}:sha256-{}", digest.trim_start_matches("sha256:")), true)
}

/// With `--manifest-format docker` the SBOM is still an OCI artifact
/// manifest, its subject the Docker schema 2 manifest, listed under the
/// referrers tag.
#[test]
fn sboms_of_a_docker_schema_2_push_are_oci_artifacts_about_it() {
    if !tools() {
        return;
    }
    let registry = Registry::plain();
    let store = SampleStore::new();
    let d = format!("{}:1", dest(&registry, "dockersbom"));
    ok(push(&store, &["-C", "gzip", "--manifest-format", "docker", "--sbom", "spdx", "--tls-verify=false", "-o", &d]));
    let raw = inspect(&registry, "dockersbom:1", true).unwrap();
    assert_eq!(raw["mediaType"], "application/vnd.docker.distribution.manifest.v2+json");
    let digest = inspect(&registry, "dockersbom:1", false).unwrap()["Digest"].as_str().unwrap().to_string();
    let index = referrers_index(&registry, "dockersbom", &digest).expect("the referrers tag is there");
    assert_eq!(index["mediaType"], "application/vnd.oci.image.index.v1+json");
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{index}");
    assert_eq!(entries[0]["artifactType"], "application/spdx+json");
    let artifact = inspect(&registry, &format!("dockersbom@{}", entries[0]["digest"].as_str().unwrap()), true).unwrap();
    assert_eq!(artifact["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(artifact["subject"]["mediaType"], "application/vnd.docker.distribution.manifest.v2+json");
    assert_eq!(artifact["subject"]["digest"], digest.as_str());
    assert_eq!(artifact["config"]["mediaType"], "application/vnd.oci.empty.v1+json");
}

/// A push whose image fails midway pushes no SBOM: no artifact manifest,
/// no referrers tag.
#[test]
fn a_failed_image_push_pushes_no_sbom() {
    if !tools() {
        return;
    }
    let registry = Registry::plain();
    let store = SampleStore::new();
    let proxy = CuttingProxy::dying(&registry.host, 12 << 20);
    let big = big_file(store.dir.path(), 20);
    let file = format!("/data/big.bin={}", big.display());
    let d = format!("docker://{}/nosbom:t", proxy.host);
    let out = push(
        &store,
        &["-C", "gzip", "--max-layers", "2", "--jobs", "1", "--file", &file, "--sbom", "spdx", "--sbom", "cyclonedx", "--tls-verify=false", "-o", &d],
    );
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert_eq!(registry.requests("PUT", "/manifests/"), 0, "no manifest went up: {}", registry.log());
    assert!(inspect(&registry, "nosbom:t", true).is_none());
}
