//! SBOMs as OCI 1.1 artifacts beside the image they describe: for each
//! document, an image manifest with `artifactType` the document's media
//! type (`application/spdx+json`, `application/vnd.cyclonedx+json`), the
//! empty config (`application/vnd.oci.empty.v1+json`, the blob `{}`), the
//! document as its one layer, and `subject` the image's manifest, as the
//! referrers of the distribution spec are made.  The layout's index lists
//! each artifact with its `artifactType` and the annotations
//! [`SUBJECT`] (the image manifest's digest) and [`SUBJECT_REF`] (the
//! image's ref name), by which a later build of the same ref replaces them
//! with the image.

use serde_json::{json, Value};

use super::documents::{self, Descriptor};
use super::layout::Layout;
use crate::config::rfc3339;
use crate::error::Result;
use crate::sbom::{Job, PreparedFiles};

/// The empty config of artifacts, and its blob.
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
pub const EMPTY_BLOB: &[u8] = b"{}";

/// The index annotation naming the image manifest an artifact is about.
pub const SUBJECT: &str = "guix-docker-native.sbom.subject";
/// The index annotation naming the ref of the image an artifact is about.
pub const SUBJECT_REF: &str = "guix-docker-native.sbom.subject.ref.name";

/// The artifacts of one image: the blobs to write (the empty config, each
/// document, each artifact manifest) and the index entries.
pub struct Artifacts {
    pub blobs: Vec<(Descriptor, Vec<u8>)>,
    pub entries: Vec<Value>,
}

impl Artifacts {
    /// The artifacts of `job`'s documents for the image whose manifest is
    /// `image` and whose ref name is `reference`.
    pub fn new(job: &Job, image: &Descriptor, reference: &str) -> Artifacts {
        let empty = Descriptor::of(EMPTY_MEDIA_TYPE, EMPTY_BLOB);
        let mut blobs = vec![(empty.clone(), EMPTY_BLOB.to_vec())];
        let mut entries = Vec::new();
        let created = rfc3339(job.created());
        for doc in job.documents(&image.digest) {
            let media_type = doc.format.media_type();
            let layer = Descriptor::of(media_type, &doc.bytes);
            let mut layer_json = descriptor_json(&layer);
            layer_json["annotations"] =
                json!({ "org.opencontainers.image.title": format!("sbom{}", doc.format.suffix()) });
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": documents::MANIFEST_MEDIA_TYPE,
                "artifactType": media_type,
                "config": descriptor_json(&empty),
                "layers": [layer_json],
                "subject": descriptor_json(image),
                "annotations": { "org.opencontainers.image.created": created },
            });
            let manifest = serde_json::to_vec(&manifest).expect("JSON");
            let manifest_descriptor = Descriptor::of(documents::MANIFEST_MEDIA_TYPE, &manifest);
            let mut entry = descriptor_json(&manifest_descriptor);
            entry["artifactType"] = json!(media_type);
            entry["annotations"] = json!({
                "org.opencontainers.image.created": created,
                SUBJECT: image.digest,
                SUBJECT_REF: reference,
            });
            entries.push(entry);
            blobs.push((layer, doc.bytes));
            blobs.push((manifest_descriptor, manifest));
        }
        Artifacts { blobs, entries }
    }
}

/// Whether the index entry `entry` is an SBOM of the image named `reference`.
pub fn is_sbom_of(entry: &Value, reference: &str) -> bool {
    entry.get("annotations").and_then(|a| a.get(SUBJECT_REF)).and_then(Value::as_str) == Some(reference)
}

fn descriptor_json(d: &Descriptor) -> Value {
    json!({ "mediaType": d.media_type, "digest": d.digest, "size": d.size })
}

/// The image manifest's descriptor in its index entry.
pub fn manifest_of(entry: &Value) -> Descriptor {
    Descriptor {
        media_type: entry["mediaType"].as_str().unwrap_or(documents::MANIFEST_MEDIA_TYPE).to_string(),
        digest: entry["digest"].as_str().expect("an index entry has a digest").to_string(),
        size: entry["size"].as_u64().expect("an index entry has a size"),
    }
}

/// Into `layout`, about to commit the image `entry` under `reference`:
/// the SBOM artifacts of `job` (none without one), in place of those of
/// the image the entry replaces; and `job`'s files, written and waiting.
pub fn attach_to_layout(layout: &mut Layout, entry: &Value, reference: &str, job: Option<&Job>) -> Result<PreparedFiles> {
    let image = manifest_of(entry);
    let mut entries = Vec::new();
    if let Some(job) = job {
        let artifacts = Artifacts::new(job, &image, reference);
        for (d, bytes) in &artifacts.blobs {
            layout.write_blob(&d.media_type, bytes)?;
        }
        entries = artifacts.entries;
    }
    layout.replace_entries(|e| is_sbom_of(e, reference), entries);
    PreparedFiles::write(job, &image.digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_empty_descriptor_is_the_specs() {
        let d = Descriptor::of(EMPTY_MEDIA_TYPE, EMPTY_BLOB);
        assert_eq!(d.digest, "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
        assert_eq!(d.size, 2);
    }
}
