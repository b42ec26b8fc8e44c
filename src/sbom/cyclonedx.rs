//! The model as a CycloneDX 1.5 JSON document.
//!
//! - The image is `metadata.component` (type `container`, `bom-ref`
//!   `image`, its digest as its SHA-256 hash); it depends on the items the
//!   build was given and on the extras.
//! - Each store item is a component (type `library`) whose `bom-ref` is
//!   its store path: name and version as Guix splits them, the purl, the
//!   NAR hash as its SHA-256 hash, the properties `guix:store-path` and
//!   `guix:nar-hash` (`NOASSERTION` without a store database, and then no
//!   `hashes`), the licence when the caller gave one (CycloneDX has no
//!   `NOASSERTION` for licences: the field is left out).
//! - `dependencies` has one entry per item listing its references; when
//!   the references are not known there is no entry (CycloneDX reads a
//!   missing entry as unknown, an empty one as "depends on nothing").
//! - Each extra is a component of type `file` whose `bom-ref` is
//!   `extra:<path>`.

use serde_json::json;

use super::format::SbomFormat;
use super::identity::document_uuid;
use super::model::Model;
use super::spdx::describe_extra;
use crate::config::rfc3339;

const IMAGE_REF: &str = "image";

/// The document, for the image whose digest is `image_digest`.
pub fn document(model: &Model, image_digest: &str) -> Vec<u8> {
    let extra_ref = |path: &str| format!("extra:{path}");
    let mut components = Vec::new();
    let mut dependencies = Vec::new();

    let mut image_depends: Vec<String> = model.roots.iter().map(|&r| model.items[r].path.clone()).collect();
    image_depends.extend(model.extras.iter().map(|e| extra_ref(&e.path)));
    dependencies.push(json!({ "ref": IMAGE_REF, "dependsOn": image_depends }));

    for item in &model.items {
        let nar = match &item.nar_sha256 {
            Some(h) => format!("sha256:{}", hex::encode(h)),
            None => "NOASSERTION".to_string(),
        };
        let mut c = json!({
            "type": "library",
            "bom-ref": item.path,
            "name": item.name,
            "purl": item.purl(),
            "properties": [
                { "name": "guix:nar-hash", "value": nar },
                { "name": "guix:store-path", "value": item.path },
            ],
        });
        if let Some(v) = &item.version {
            c["version"] = json!(v);
        }
        if let Some(h) = &item.nar_sha256 {
            c["hashes"] = json!([{ "alg": "SHA-256", "content": hex::encode(h) }]);
        }
        if let Some(l) = &item.license {
            c["licenses"] = json!([{ "expression": l }]);
        }
        components.push(c);
        if let Some(list) = &item.depends_on {
            let refs: Vec<&str> = list.iter().map(|&j| model.items[j].path.as_str()).collect();
            dependencies.push(json!({ "ref": item.path, "dependsOn": refs }));
        }
    }
    for extra in &model.extras {
        let (_, description) = describe_extra(&extra.kind);
        let mut c = json!({
            "type": "file",
            "bom-ref": extra_ref(&extra.path),
            "name": extra.path,
            "description": description,
        });
        if let Some(sha256) = extra.kind.sha256() {
            c["hashes"] = json!([{ "alg": "SHA-256", "content": hex::encode(sha256) }]);
        }
        components.push(c);
    }

    let image_hex = image_digest.strip_prefix("sha256:").unwrap_or(image_digest);
    let doc = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": format!("urn:uuid:{}", document_uuid(SbomFormat::CycloneDx, image_digest)),
        "version": 1,
        "metadata": {
            "timestamp": rfc3339(model.created),
            "tools": { "components": [{
                "type": "application",
                "name": "guix-docker-native",
                "version": env!("CARGO_PKG_VERSION"),
            }]},
            "component": {
                "type": "container",
                "bom-ref": IMAGE_REF,
                "name": model.image_name,
                "hashes": [{ "alg": "SHA-256", "content": image_hex }],
                "description": format!("The image {}, digest {image_digest}.", model.image_name),
            },
        },
        "components": components,
        "dependencies": dependencies,
    });
    let mut bytes = serde_json::to_vec_pretty(&doc).expect("JSON of strings");
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sbom::model::sample;
    use serde_json::Value;

    #[test]
    fn components_dependencies_and_the_subject() {
        let doc: Value = serde_json::from_slice(&document(&sample(true), "sha256:ab")).unwrap();
        assert_eq!(doc["specVersion"], "1.5");
        assert!(doc["serialNumber"].as_str().unwrap().starts_with("urn:uuid:"));
        assert_eq!(doc["metadata"]["component"]["type"], "container");
        assert_eq!(doc["metadata"]["component"]["hashes"][0]["content"], "ab");
        let main = "/gnu/store/00000000000000000000000000000000-profile";
        let lib = "/gnu/store/11111111111111111111111111111111-libstdc++-13";
        assert_eq!(doc["dependencies"][0], json!({ "ref": "image", "dependsOn": [main, "extra:/etc/a"] }));
        assert_eq!(doc["dependencies"][1], json!({ "ref": main, "dependsOn": [lib] }));
        assert_eq!(doc["dependencies"][2], json!({ "ref": lib, "dependsOn": [] }));
        assert_eq!(doc["components"][0]["licenses"][0]["expression"], "GPL-3.0-or-later OR LicenseRef-x");
        assert!(doc["components"][1].get("licenses").is_none());
        assert_eq!(doc["components"][1]["purl"], "pkg:guix/libstdc%2B%2B@13");
        assert_eq!(doc["components"][2]["type"], "file");
    }

    #[test]
    fn unknown_hashes_and_references_are_left_out() {
        let doc: Value = serde_json::from_slice(&document(&sample(false), "sha256:ab")).unwrap();
        assert!(doc["components"][0].get("hashes").is_none());
        assert_eq!(doc["components"][0]["properties"][0], json!({ "name": "guix:nar-hash", "value": "NOASSERTION" }));
        assert_eq!(doc["dependencies"].as_array().unwrap().len(), 1, "only the image's");
    }
}
