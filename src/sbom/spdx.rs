//! The model as an SPDX 2.3 JSON document.
//!
//! - The image is the package `SPDXRef-Image` (purpose `CONTAINER`, its
//!   digest as its SHA-256 checksum), which the document `DESCRIBES`; it
//!   `CONTAINS` every store item and extra, and `DEPENDS_ON` the items
//!   the build was given.
//! - Each store item is a package `SPDXRef-Item-<hash part>`: name and
//!   version as Guix splits them, the store path as `packageFileName`, the
//!   purl as an external reference, the NAR hash as its SHA-256 checksum
//!   (no checksum, and a comment saying `NOASSERTION`, without a store
//!   database), and one `DEPENDS_ON` per reference (`DEPENDS_ON
//!   NOASSERTION` when the references are not known).
//! - Each extra is a package `SPDXRef-Extra-<n>` named by its path.
//! - Licences are `NOASSERTION` unless the caller gave one; the
//!   `LicenseRef-`s used are declared.

use serde_json::{json, Value};

use super::format::SbomFormat;
use super::identity::document_uuid;
use super::license;
use super::model::{ExtraKind, Model};
use crate::config::rfc3339;

const NOASSERTION: &str = "NOASSERTION";

/// The document, for the image whose digest is `image_digest`.
pub fn document(model: &Model, image_digest: &str) -> Vec<u8> {
    let item_id = |i: usize| format!("SPDXRef-Item-{}", model.items[i].hash_part);
    let extra_id = |i: usize| format!("SPDXRef-Extra-{}", i + 1);
    let hashes_comment = match &model.database {
        Some(db) => format!("NAR hashes from the store database {}", db.display()),
        None => "no store database was given: the items' NAR hashes are NOASSERTION".to_string(),
    };

    let mut packages = vec![json!({
        "SPDXID": "SPDXRef-Image",
        "name": model.image_name,
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": false,
        "primaryPackagePurpose": "CONTAINER",
        "checksums": [checksum(image_digest.strip_prefix("sha256:").unwrap_or(image_digest))],
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION,
        "comment": format!("The image {}, digest {image_digest}.", model.image_name),
    })];
    let mut relationships = vec![relationship("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-Image")];
    let mut refs = Vec::new();

    for (i, item) in model.items.iter().enumerate() {
        let mut p = json!({
            "SPDXID": item_id(i),
            "name": item.name,
            "packageFileName": item.path,
            "downloadLocation": NOASSERTION,
            "filesAnalyzed": false,
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": item.purl(),
            }],
            "licenseConcluded": NOASSERTION,
            "licenseDeclared": item.license.as_deref().unwrap_or(NOASSERTION),
            "copyrightText": NOASSERTION,
        });
        if let Some(v) = &item.version {
            p["versionInfo"] = json!(v);
        }
        match &item.nar_sha256 {
            Some(hash) => {
                p["checksums"] = json!([checksum(&hex::encode(hash))]);
                p["comment"] = json!("The SHA-256 checksum is the store item's NAR hash.");
            }
            None => p["comment"] = json!("NAR hash: NOASSERTION (no store database was given)."),
        }
        if let Some(l) = &item.license {
            refs.extend(license::check_expression(l).unwrap_or_default());
        }
        packages.push(p);
        relationships.push(relationship("SPDXRef-Image", "CONTAINS", &item_id(i)));
    }
    for (n, extra) in model.extras.iter().enumerate() {
        let (purpose, description) = describe_extra(&extra.kind);
        let mut p = json!({
            "SPDXID": extra_id(n),
            "name": extra.path,
            "packageFileName": extra.path,
            "downloadLocation": NOASSERTION,
            "filesAnalyzed": false,
            "primaryPackagePurpose": purpose,
            "description": description,
            "licenseConcluded": NOASSERTION,
            "licenseDeclared": NOASSERTION,
            "copyrightText": NOASSERTION,
        });
        if let Some(sha256) = extra.kind.sha256() {
            p["checksums"] = json!([checksum(&hex::encode(sha256))]);
        }
        packages.push(p);
        relationships.push(relationship("SPDXRef-Image", "CONTAINS", &extra_id(n)));
    }
    for &r in &model.roots {
        relationships.push(relationship("SPDXRef-Image", "DEPENDS_ON", &item_id(r)));
    }
    for (i, item) in model.items.iter().enumerate() {
        match &item.depends_on {
            Some(list) => {
                for &j in list {
                    relationships.push(relationship(&item_id(i), "DEPENDS_ON", &item_id(j)));
                }
            }
            None => relationships.push(relationship(&item_id(i), "DEPENDS_ON", NOASSERTION)),
        }
    }

    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{} SBOM", model.image_name),
        "documentNamespace": format!(
            "https://spdx.org/spdxdocs/guix-docker-native-{}",
            document_uuid(SbomFormat::Spdx, image_digest)
        ),
        "creationInfo": {
            "created": rfc3339(model.created),
            "creators": [format!("Tool: guix-docker-native-{}", env!("CARGO_PKG_VERSION"))],
            "comment": format!("The closure of the image's store items; {hashes_comment}."),
        },
        "packages": packages,
        "relationships": relationships,
    });
    refs.sort();
    refs.dedup();
    if !refs.is_empty() {
        doc["hasExtractedLicensingInfos"] = Value::Array(
            refs.iter()
                .map(|id| {
                    json!({
                        "licenseId": id,
                        "extractedText": NOASSERTION,
                        "comment": "A licence the caller named; its text is not in this document.",
                    })
                })
                .collect(),
        );
    }
    let mut bytes = serde_json::to_vec_pretty(&doc).expect("JSON of strings");
    bytes.push(b'\n');
    bytes
}

fn checksum(hex: &str) -> Value {
    json!({ "algorithm": "SHA256", "checksumValue": hex })
}

fn relationship(from: &str, kind: &str, to: &str) -> Value {
    json!({ "spdxElementId": from, "relationshipType": kind, "relatedSpdxElement": to })
}

/// An extra's SPDX purpose and description.
pub(super) fn describe_extra(kind: &ExtraKind) -> (&'static str, String) {
    match kind {
        ExtraKind::Directory { mode, uid, gid } => ("OTHER", format!("A directory, mode {mode:o}, owner {uid}:{gid}.")),
        ExtraKind::Symlink { target } => ("OTHER", format!("A symbolic link to {target}.")),
        ExtraKind::File { .. } => ("FILE", "A file copied into the image.".to_string()),
        ExtraKind::StoreDatabase { .. } => ("FILE", "The store database, registering the image's store items.".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sbom::model::sample;

    fn relationships(doc: &Value, kind: &str, from: &str) -> Vec<String> {
        doc["relationships"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["relationshipType"] == kind && r["spdxElementId"] == from)
            .map(|r| r["relatedSpdxElement"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn items_hashes_references_licences_and_the_subject() {
        let bytes = document(&sample(true), "sha256:ab");
        assert_eq!(bytes, document(&sample(true), "sha256:ab"), "the same bytes");
        let doc: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(doc["spdxVersion"], "SPDX-2.3");
        assert_eq!(doc["creationInfo"]["created"], "1970-01-01T00:00:01Z");
        assert_eq!(relationships(&doc, "DESCRIBES", "SPDXRef-DOCUMENT"), ["SPDXRef-Image"]);
        let main = "SPDXRef-Item-00000000000000000000000000000000";
        let lib = "SPDXRef-Item-11111111111111111111111111111111";
        assert_eq!(relationships(&doc, "DEPENDS_ON", main), [lib]);
        assert!(relationships(&doc, "DEPENDS_ON", lib).is_empty());
        assert_eq!(relationships(&doc, "CONTAINS", "SPDXRef-Image"), [main, lib, "SPDXRef-Extra-1"]);
        let packages = doc["packages"].as_array().unwrap();
        assert_eq!(packages[0]["checksums"][0]["checksumValue"], "ab");
        assert_eq!(packages[1]["licenseDeclared"], "GPL-3.0-or-later OR LicenseRef-x");
        assert!(packages[1].get("versionInfo").is_none());
        assert_eq!(packages[2]["versionInfo"], "13");
        assert_eq!(packages[2]["externalRefs"][0]["referenceLocator"], "pkg:guix/libstdc%2B%2B@13");
        assert_eq!(packages[2]["checksums"][0]["checksumValue"], hex::encode([7u8; 32]));
        assert_eq!(packages[2]["licenseDeclared"], NOASSERTION);
        assert_eq!(doc["hasExtractedLicensingInfos"][0]["licenseId"], "LicenseRef-x");
        let other: Value = serde_json::from_slice(&document(&sample(true), "sha256:cd")).unwrap();
        assert_ne!(doc["documentNamespace"], other["documentNamespace"]);
    }

    #[test]
    fn unknown_hashes_and_references_are_noassertion() {
        let doc: Value = serde_json::from_slice(&document(&sample(false), "sha256:ab")).unwrap();
        let item = &doc["packages"][1];
        assert!(item.get("checksums").is_none());
        assert!(item["comment"].as_str().unwrap().contains(NOASSERTION));
        assert_eq!(relationships(&doc, "DEPENDS_ON", "SPDXRef-Item-00000000000000000000000000000000"), [NOASSERTION]);
    }
}
