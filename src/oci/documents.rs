//! The JSON documents of an OCI image layout: `oci-layout`, the image
//! manifest, the index and its entries.  The image config is the same JSON
//! as the docker-archive's (the OCI config is that format), given the OCI
//! media type.  serde_json's maps keep keys sorted, so the bytes depend on
//! the content alone.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::config::rfc3339;
use crate::options::Platform;

pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";

/// `oci-layout`.
pub const LAYOUT_FILE: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// The index annotation skopeo and podman look an image up by.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The index annotation `ctr images import` names the image by.
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// A blob as a descriptor names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    pub size: u64,
}

impl Descriptor {
    /// The descriptor of `bytes`.
    pub fn of(media_type: &str, bytes: &[u8]) -> Descriptor {
        Descriptor { media_type: media_type.into(), digest: digest_of(bytes), size: bytes.len() as u64 }
    }

    fn to_json(&self) -> Value {
        json!({ "mediaType": self.media_type, "digest": self.digest, "size": self.size })
    }

    /// The hex part of the digest (the blob's file name).
    pub fn hex(&self) -> &str {
        self.digest.strip_prefix("sha256:").expect("sha256 digests only")
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The image manifest: the config, the layers (bottom first) and the
/// annotations `org.opencontainers.image.created` and, when the main
/// item's name says them, `title` and `version`: the name split as Guix
/// splits a package's ([`crate::sbom::name::name_and_version`], the
/// version from the first `-` a digit follows: `hello-2.12.1` is `hello`
/// and `2.12.1`), no version for a name without one (`profile`), and no
/// title when the name part is empty (`-1`).
pub fn manifest(config: &Descriptor, layers: &[Descriptor], created: i64, main_item_name: &str) -> Vec<u8> {
    let mut annotations = Map::new();
    annotations.insert("org.opencontainers.image.created".into(), json!(rfc3339(created)));
    let (title, version) = crate::sbom::name::name_and_version(main_item_name);
    if !title.is_empty() {
        annotations.insert("org.opencontainers.image.title".into(), json!(title));
    }
    if let Some(version) = version {
        annotations.insert("org.opencontainers.image.version".into(), json!(version));
    }
    let value = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": config.to_json(),
        "layers": layers.iter().map(Descriptor::to_json).collect::<Vec<_>>(),
        "annotations": Value::Object(annotations),
    });
    serde_json::to_vec(&value).expect("JSON of strings")
}

/// The `platform` of an index entry: `os`, `architecture` and, when the
/// platform has one, `variant` (see [`crate::options::PLATFORMS`]).
pub fn platform(platform: &Platform) -> Value {
    let mut p = Map::new();
    p.insert("architecture".into(), json!(platform.architecture));
    p.insert("os".into(), json!("linux"));
    if let Some(variant) = platform.variant {
        p.insert("variant".into(), json!(variant));
    }
    Value::Object(p)
}

/// The full name a tag stands for, as Docker resolves it and containerd
/// stores it: `hello:2.12` is `docker.io/library/hello:2.12`,
/// `me/app:1` is `docker.io/me/app:1`, `localhost:5000/a:1` stays.
pub fn full_name(tag: &str) -> String {
    let (first, rest) = match tag.split_once('/') {
        Some((first, rest)) => (first, Some(rest)),
        None => (tag, None),
    };
    match rest {
        Some(_) if first.contains('.') || first.contains(':') || first == "localhost" => tag.to_string(),
        Some(_) => format!("docker.io/{tag}"),
        None => format!("docker.io/library/{tag}"),
    }
}

/// The index entry of an image: its manifest and platform, or an image
/// index (`platform` `None`: the index's manifests say theirs), and its
/// names.
pub fn index_entry(target: &Descriptor, platform: Option<&Platform>, reference: &str, full: &str) -> Value {
    let mut entry = target.to_json();
    if let Some(platform) = platform {
        entry["platform"] = self::platform(platform);
    }
    entry["annotations"] = json!({ REF_NAME: reference, CONTAINERD_NAME: full });
    entry
}

/// The image index of a multi-platform image: each platform's manifest,
/// in the order given, with its platform.
pub fn platform_index(manifests: &[(Descriptor, &Platform)]) -> Vec<u8> {
    let entries: Vec<Value> = manifests
        .iter()
        .map(|(manifest, p)| {
            let mut entry = manifest.to_json();
            entry["platform"] = platform(p);
            entry
        })
        .collect();
    serde_json::to_vec(&new_index(entries)).expect("JSON of strings")
}

/// A new index holding `entries`.
pub fn new_index(entries: Vec<Value>) -> Value {
    json!({ "schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": entries })
}

/// Checks that `bytes` (from `index.json`) are an image index, and returns it.
pub fn parse_index(bytes: &[u8]) -> std::result::Result<Value, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON ({e})"))?;
    if !value.is_object() {
        return Err("not a JSON object".into());
    }
    if value.get("schemaVersion") != Some(&json!(2)) {
        return Err("schemaVersion is not 2".into());
    }
    if let Some(t) = value.get("mediaType") {
        if t != INDEX_MEDIA_TYPE {
            return Err(format!("mediaType is {t}, not {INDEX_MEDIA_TYPE}"));
        }
    }
    match value.get("manifests") {
        Some(Value::Array(entries)) => {
            for (i, e) in entries.iter().enumerate() {
                let ok = e.get("digest").and_then(Value::as_str).is_some() && e.get("size").and_then(Value::as_u64).is_some();
                if !ok {
                    return Err(format!("manifests[{i}] has no digest or size"));
                }
            }
        }
        _ => return Err("no 'manifests' array".into()),
    }
    Ok(value)
}

/// `index` with `entry` added: an entry with the same ref name goes (it is
/// replaced), the others stay in their order, the new one comes last.
pub fn add_to_index(mut index: Value, entry: Value, reference: &str) -> Value {
    let entries = index["manifests"].as_array_mut().expect("a parsed index");
    entries.retain(|e| e.get("annotations").and_then(|a| a.get(REF_NAME)).and_then(Value::as_str) != Some(reference));
    entries.push(entry);
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The title and version annotations of an image whose main item is
    /// named `name`.
    fn title_and_version(name: &str) -> (Option<String>, Option<String>) {
        let config = Descriptor::of(CONFIG_MEDIA_TYPE, b"{}");
        let v: Value = serde_json::from_slice(&manifest(&config, &[], 1, name)).unwrap();
        let annotation = |key: &str| v["annotations"].get(key).map(|a| a.as_str().unwrap().to_string());
        (annotation("org.opencontainers.image.title"), annotation("org.opencontainers.image.version"))
    }

    #[test]
    fn names_split_as_guix_splits_packages() {
        let some = |title: &str, version: &str| (Some(title.to_string()), Some(version.to_string()));
        assert_eq!(title_and_version("hello-2.12.1"), some("hello", "2.12.1"));
        assert_eq!(title_and_version("gcc-toolchain-13.2.0"), some("gcc-toolchain", "13.2.0"));
        assert_eq!(title_and_version("profile"), (Some("profile".into()), None));
        assert_eq!(title_and_version("python-3-x"), some("python", "3-x"));
        // At the first `-` a digit follows, as package-name->name+version,
        // not the last: a later part with `-digit` stays in the version.
        assert_eq!(title_and_version("foo-1.2-bar-3"), some("foo", "1.2-bar-3"));
        assert_eq!(title_and_version("openssl-1.1.1w-doc-2"), some("openssl", "1.1.1w-doc-2"));
        // An empty name part is no title.
        assert_eq!(title_and_version("-1"), (None, Some("1".into())));
    }

    #[test]
    fn full_names_as_docker_resolves_them() {
        assert_eq!(full_name("hello:2.12"), "docker.io/library/hello:2.12");
        assert_eq!(full_name("me/app:1"), "docker.io/me/app:1");
        assert_eq!(full_name("localhost/app:1"), "localhost/app:1");
        assert_eq!(full_name("localhost:5000/app:1"), "localhost:5000/app:1");
        assert_eq!(full_name("quay.io/a/b:c"), "quay.io/a/b:c");
    }

    #[test]
    fn manifest_names_its_blobs_and_annotations() {
        let config = Descriptor::of(CONFIG_MEDIA_TYPE, b"{}");
        let layer = Descriptor { media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(), digest: digest_of(b"x"), size: 1 };
        let v: Value = serde_json::from_slice(&manifest(&config, &[layer.clone()], 1, "hello-2.12")).unwrap();
        assert_eq!(v["schemaVersion"], 2);
        assert_eq!(v["mediaType"], MANIFEST_MEDIA_TYPE);
        assert_eq!(v["config"]["digest"], config.digest);
        assert_eq!(v["config"]["size"], 2);
        assert_eq!(v["layers"][0]["mediaType"], layer.media_type);
        assert_eq!(v["annotations"]["org.opencontainers.image.created"], "1970-01-01T00:00:01Z");
        assert_eq!(v["annotations"]["org.opencontainers.image.title"], "hello");
        assert_eq!(v["annotations"]["org.opencontainers.image.version"], "2.12");
        let v: Value = serde_json::from_slice(&manifest(&config, &[], 1, "profile")).unwrap();
        assert!(v["annotations"].get("org.opencontainers.image.version").is_none());
    }

    #[test]
    fn an_index_entry_is_replaced_by_ref_name_only() {
        let m = |s: &[u8]| Descriptor::of(MANIFEST_MEDIA_TYPE, s);
        let amd64 = crate::options::platform_of_system("x86_64-linux").unwrap();
        let arm64 = crate::options::platform_of_system("aarch64-linux").unwrap();
        let index = new_index(vec![
            index_entry(&m(b"a"), Some(amd64), "a:1", "docker.io/library/a:1"),
            index_entry(&m(b"b"), Some(amd64), "b:1", "docker.io/library/b:1"),
        ]);
        let index = add_to_index(index, index_entry(&m(b"c"), Some(arm64), "a:1", "docker.io/library/a:1"), "a:1");
        let entries = index["manifests"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0]["annotations"][REF_NAME], "b:1");
        assert_eq!(entries[1]["digest"], m(b"c").digest);
        assert_eq!(entries[1]["platform"]["variant"], "v8");
        parse_index(&serde_json::to_vec(&index).unwrap()).unwrap();
    }

    #[test]
    fn a_platform_index_lists_each_manifest_with_its_platform() {
        let m = |s: &[u8]| Descriptor::of(MANIFEST_MEDIA_TYPE, s);
        let system = |s| crate::options::platform_of_system(s).unwrap();
        let bytes = platform_index(&[(m(b"x"), system("x86_64-linux")), (m(b"a"), system("armhf-linux"))]);
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["mediaType"], INDEX_MEDIA_TYPE);
        assert_eq!(v["manifests"][0]["digest"], m(b"x").digest);
        assert_eq!(v["manifests"][0]["mediaType"], MANIFEST_MEDIA_TYPE);
        assert_eq!(v["manifests"][0]["platform"], json!({"architecture": "amd64", "os": "linux"}));
        assert_eq!(v["manifests"][1]["platform"], json!({"architecture": "arm", "os": "linux", "variant": "v7"}));
        let entry = index_entry(&Descriptor::of(INDEX_MEDIA_TYPE, &bytes), None, "a:1", "docker.io/library/a:1");
        assert_eq!(entry["mediaType"], INDEX_MEDIA_TYPE);
        assert!(entry.get("platform").is_none());
        parse_index(&bytes).unwrap();
    }

    #[test]
    fn corrupt_indexes_are_named() {
        for (bytes, why) in [
            (&b"{"[..], "not JSON"),
            (b"[]", "not a JSON object"),
            (b"{\"schemaVersion\":1,\"manifests\":[]}", "schemaVersion"),
            (b"{\"schemaVersion\":2}", "manifests"),
            (b"{\"schemaVersion\":2,\"manifests\":[{}]}", "manifests[0]"),
        ] {
            let e = parse_index(bytes).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }
}
