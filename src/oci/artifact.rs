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

/// One SBOM as an artifact: its document blob and its manifest.
pub struct Artifact {
    /// The document's media type, the manifest's `artifactType`.
    pub artifact_type: &'static str,
    pub document: (Descriptor, Vec<u8>),
    pub manifest: (Descriptor, Vec<u8>),
    /// The image manifest it is about.
    pub subject: Descriptor,
    /// The image's creation time, RFC 3339.
    pub created: String,
}

impl Artifact {
    /// The artifacts of `job`'s documents about the image manifest `subject`.
    pub fn of(job: &Job, subject: &Descriptor) -> Vec<Artifact> {
        let empty = Descriptor::of(EMPTY_MEDIA_TYPE, EMPTY_BLOB);
        let created = rfc3339(job.created());
        let mut artifacts = Vec::new();
        for doc in job.documents(&subject.digest) {
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
                "subject": descriptor_json(subject),
                "annotations": { "org.opencontainers.image.created": created },
            });
            let manifest = serde_json::to_vec(&manifest).expect("JSON");
            let manifest_descriptor = Descriptor::of(documents::MANIFEST_MEDIA_TYPE, &manifest);
            artifacts.push(Artifact {
                artifact_type: media_type,
                document: (layer, doc.bytes),
                manifest: (manifest_descriptor, manifest),
                subject: subject.clone(),
                created: created.clone(),
            });
        }
        artifacts
    }

    /// Its descriptor in a referrers list (the referrers API's answer, or
    /// the index under the referrers tag): the manifest's, with its
    /// `artifactType` and annotations, as the distribution spec asks.
    pub fn referrer_descriptor(&self) -> Value {
        let mut d = descriptor_json(&self.manifest.0);
        d["artifactType"] = json!(self.artifact_type);
        d["annotations"] = json!({ "org.opencontainers.image.created": self.created });
        d
    }
}

/// The artifacts of some images: the blobs to write (the empty config,
/// each document, each artifact manifest) and the index entries.
pub struct Artifacts {
    pub blobs: Vec<(Descriptor, Vec<u8>)>,
    pub entries: Vec<Value>,
}

impl Artifacts {
    /// The artifacts of each job's documents for the image manifest it is
    /// paired with, all under the ref name `reference`.
    pub fn new(subjects: &[(Descriptor, &Job)], reference: &str) -> Artifacts {
        let empty = Descriptor::of(EMPTY_MEDIA_TYPE, EMPTY_BLOB);
        let mut blobs = vec![(empty, EMPTY_BLOB.to_vec())];
        let mut entries = Vec::new();
        for (image, job) in subjects {
            for artifact in Artifact::of(job, image) {
                let mut entry = descriptor_json(&artifact.manifest.0);
                entry["artifactType"] = json!(artifact.artifact_type);
                entry["annotations"] = json!({
                    "org.opencontainers.image.created": artifact.created,
                    SUBJECT: image.digest,
                    SUBJECT_REF: reference,
                });
                entries.push(entry);
                blobs.push(artifact.document);
                blobs.push(artifact.manifest);
            }
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

/// Into `layout`, about to commit an image under `reference`: the SBOM
/// artifacts of each image manifest of `subjects` with a job, in place of
/// those of the image the entry replaces; and the jobs' files, written and
/// waiting.
pub fn attach_to_layout(layout: &mut Layout, subjects: &[(Descriptor, Option<&Job>)], reference: &str) -> Result<PreparedFiles> {
    let with_jobs: Vec<(Descriptor, &Job)> = subjects.iter().filter_map(|(d, j)| j.map(|j| (d.clone(), j))).collect();
    let mut entries = Vec::new();
    let mut files = PreparedFiles::default();
    if !with_jobs.is_empty() {
        let artifacts = Artifacts::new(&with_jobs, reference);
        for (d, bytes) in &artifacts.blobs {
            layout.write_blob(&d.media_type, bytes)?;
        }
        entries = artifacts.entries;
        for (image, job) in &with_jobs {
            files.absorb(PreparedFiles::write(Some(job), &image.digest)?);
        }
    }
    layout.replace_entries(|e| is_sbom_of(e, reference), entries);
    Ok(files)
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
