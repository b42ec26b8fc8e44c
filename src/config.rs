//! The JSON files of a docker-archive: the image config, `manifest.json`
//! and the legacy `repositories`.  serde_json's maps keep keys sorted, so
//! the bytes depend on the content alone.

use serde_json::{json, Map, Value};

use crate::options::{ImageOptions, CREATION_TIME_RANGE};
use crate::reference::split_tag;

/// One layer as the config and manifest describe it.
pub struct LayerInfo {
    /// The layer's file in the archive, `<id>/layer.tar`.
    pub file: String,
    /// `sha256:<hex>` of the uncompressed layer.
    pub diff_id: String,
    /// What the layer holds, for the history entry.
    pub comment: String,
}

/// Formats seconds since the epoch as RFC 3339 UTC (`1970-01-01T00:00:01Z`).
/// `secs` is within [`CREATION_TIME_RANGE`] (the creation time's setter and
/// the `SOURCE_DATE_EPOCH` check see to it), the years `time` writes in
/// RFC 3339.
pub(crate) fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| panic!("creation time {secs}: outside {CREATION_TIME_RANGE:?}, which its setter refuses"))
}

fn strings(v: &[String]) -> Value {
    Value::Array(v.iter().map(|s| Value::String(s.clone())).collect())
}

fn empty_objects<'a>(keys: impl Iterator<Item = &'a String>) -> Value {
    Value::Object(keys.map(|k| (k.clone(), json!({}))).collect())
}

/// The image config.  `entry_point` is the resolved one (absolute program).
pub fn image_config(options: &ImageOptions, entry_point: &[String], created: i64, layers: &[LayerInfo]) -> Vec<u8> {
    let created = rfc3339(created);
    let mut config = Map::new();
    if !entry_point.is_empty() {
        config.insert("Entrypoint".into(), strings(entry_point));
    }
    if !options.cmd.is_empty() {
        config.insert("Cmd".into(), strings(&options.cmd));
    }
    if !options.env.is_empty() {
        config.insert("Env".into(), strings(&options.env));
    }
    if let Some(dir) = &options.working_dir {
        config.insert("WorkingDir".into(), json!(dir));
    }
    if let Some(user) = &options.user {
        config.insert("User".into(), json!(user));
    }
    if !options.labels.is_empty() {
        config.insert("Labels".into(), json!(options.labels));
    }
    if !options.exposed_ports.is_empty() {
        config.insert("ExposedPorts".into(), empty_objects(options.exposed_ports.iter()));
    }
    if !options.volumes.is_empty() {
        config.insert("Volumes".into(), empty_objects(options.volumes.iter()));
    }
    let history: Vec<Value> = layers
        .iter()
        .map(|l| json!({ "created": created, "created_by": "guix-docker-native", "comment": l.comment }))
        .collect();
    let mut value = json!({
        "architecture": options.platform.architecture,
        "os": "linux",
        "created": created,
        "config": Value::Object(config),
        "rootfs": { "type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>() },
        "history": history,
    });
    // As `docker save` and the OCI config have it (arm64 is v8, arm v7).
    if let Some(variant) = options.platform.variant {
        value["variant"] = json!(variant);
    }
    serde_json::to_vec(&value).expect("JSON of strings")
}

/// `manifest.json`: one image.
pub fn manifest(config_file: &str, tags: &[String], layers: &[LayerInfo]) -> Vec<u8> {
    let value = json!([{
        "Config": config_file,
        "RepoTags": tags,
        "Layers": layers.iter().map(|l| l.file.clone()).collect::<Vec<_>>(),
    }]);
    serde_json::to_vec(&value).expect("JSON of strings")
}

/// The legacy `repositories` file: repository -> tag -> top layer id.
pub fn repositories(tags: &[String], top_layer_id: &str) -> Vec<u8> {
    let mut repos: Map<String, Value> = Map::new();
    for tag in tags {
        let (name, Some(tag)) = split_tag(tag) else { panic!("tag '{tag}': validated tags have a tag") };
        let entry = repos.entry(name.to_string()).or_insert_with(|| json!({}));
        entry[tag] = json!(top_layer_id);
    }
    serde_json::to_vec(&Value::Object(repos)).expect("JSON of strings")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(1), "1970-01-01T00:00:01Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339(*CREATION_TIME_RANGE.start()), "0000-01-01T00:00:00Z");
        assert_eq!(rfc3339(*CREATION_TIME_RANGE.end()), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn config_has_what_engines_require() {
        let mut o = ImageOptions::new();
        o.add_env("A=1").unwrap();
        o.add_exposed_port("80").unwrap();
        let layers = [LayerInfo { file: "x/layer.tar".into(), diff_id: "sha256:00".into(), comment: "c".into() }];
        let v: Value = serde_json::from_slice(&image_config(&o, &["/bin/sh".into()], 1, &layers)).unwrap();
        assert_eq!(v["os"], "linux");
        assert_eq!(v["created"], "1970-01-01T00:00:01Z");
        assert_eq!(v["rootfs"]["type"], "layers");
        assert_eq!(v["rootfs"]["diff_ids"][0], "sha256:00");
        assert_eq!(v["config"]["Entrypoint"][0], "/bin/sh");
        assert_eq!(v["config"]["Env"][0], "A=1");
        assert_eq!(v["config"]["ExposedPorts"]["80/tcp"], json!({}));
        assert_eq!(v["history"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn repositories_group_tags() {
        let r = repositories(&["localhost:5000/a:1".into(), "localhost:5000/a:2".into()], "id");
        assert_eq!(String::from_utf8(r).unwrap(), r#"{"localhost:5000/a":{"1":"id","2":"id"}}"#);
    }
}
