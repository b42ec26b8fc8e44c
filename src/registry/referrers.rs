//! SBOMs pushed with the image, as OCI 1.1 artifacts whose `subject` is
//! the image's manifest (those of `crate::oci::artifact`), the way the
//! distribution spec has clients attach referrers:
//!
//! 1. the empty config and the document (blobs), then the artifact
//!    manifest by its digest;
//! 2. a registry with the referrers API answers that `PUT` with the header
//!    `OCI-Subject: <the subject's digest>`, and lists the artifact itself
//!    (`GET /v2/NAME/referrers/DIGEST`);
//! 3. without it (no `OCI-Subject`, as Debian's distribution 2.8), the
//!    referrers tag schema: the tag `sha256-<hex of the subject's
//!    digest>` names an image index listing the artifacts.  The index
//!    under that tag is fetched first and added to (an entry with the same
//!    digest is not added twice), so the SBOMs of earlier pushes, or other
//!    tools' signatures, stay.  Two clients updating one subject's tag at
//!    the same moment can lose one's entry: the schema has no lock.
//!
//! All of this happens once every image manifest is up by its digest and
//! before any tag moves ([`super::BeforeTags`]): a failed SBOM push fails
//! the push and moves no tag.

use serde_json::Value;

use super::blobs;
use super::client::{Client, Request};
use super::PlatformImage;
use crate::destination::RegistryReference;
use crate::error::{Error, Result};
use crate::oci::artifact::{Artifact, EMPTY_BLOB, EMPTY_MEDIA_TYPE};
use crate::oci::documents::{self, Descriptor};
use crate::options::ImageOptions;
use crate::sbom::{Job, PreparedFiles};

/// The referrers tag schema's tag for `digest` (`sha256:<hex>`):
/// `sha256-<hex>`, each part cut as the spec says (algorithm to 32
/// characters, the rest to 64).
pub fn referrers_tag(digest: &str) -> String {
    let (algorithm, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
    let cut = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    format!("{}-{}", cut(algorithm, 32), cut(hex, 64))
}

/// How one subject's SBOMs were attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attached {
    /// The registry took them in through its referrers API.
    ReferrersApi,
    /// Listed in the index under the referrers tag (`sha256-<hex>`).
    ReferrersTag(String),
}

/// Pushes `images` as [`super::push`] or, with `index`, [`super::push_index`]
/// do, and each image's SBOMs (`sboms`, one per image, `None` for none)
/// as artifacts about its manifest, before the tags; then writes the
/// jobs' `--sbom-output` files.
pub fn push_with_sboms(
    images: &[PlatformImage],
    index: bool,
    reference: &RegistryReference,
    options: &ImageOptions,
    sboms: &[Option<&Job>],
) -> Result<()> {
    assert_eq!(images.len(), sboms.len(), "one SBOM job (or none) per image");
    if sboms.iter().all(Option::is_none) {
        return if index {
            super::push_index(images, reference, options)
        } else {
            super::push(images[0].plan, images[0].main_name, reference, options)
        };
    }
    let attach = |client: &Client, manifests: &[Descriptor]| -> Result<()> {
        for (subject, job) in manifests.iter().zip(sboms) {
            if let Some(job) = job {
                attach(client, subject, &Artifact::of(job, subject))?;
            }
        }
        Ok(())
    };
    let manifests = super::push_images(images, index, reference, options, Some(&attach))?;
    let mut files = PreparedFiles::default();
    for (subject, job) in manifests.iter().zip(sboms) {
        files.absorb(PreparedFiles::write(*job, &subject.digest)?);
    }
    files.commit()?;
    files.keep();
    Ok(())
}

/// What an artifact is called in messages: `the SPDX SBOM of sha256:…`.
fn artifact_name(artifact: &Artifact) -> String {
    let format = match artifact.artifact_type {
        "application/spdx+json" => "SPDX",
        "application/vnd.cyclonedx+json" => "CycloneDX",
        other => other,
    };
    format!("the {format} SBOM ({}) of {}", artifact.manifest.0.digest, artifact.subject.digest)
}

/// Pushes `artifacts`, all about `subject`, into the client's repository,
/// and lists them under the referrers tag unless the registry took them in
/// through its referrers API.
pub fn attach(client: &Client, subject: &Descriptor, artifacts: &[Artifact]) -> Result<Attached> {
    let empty = Descriptor::of(EMPTY_MEDIA_TYPE, EMPTY_BLOB);
    let mut unlisted = Vec::new();
    for (i, artifact) in artifacts.iter().enumerate() {
        let name = artifact_name(artifact);
        if i == 0 {
            blobs::put_whole(client, EMPTY_BLOB, &empty.digest, None, &format!("{name}: the empty config"))?;
        }
        let (document, bytes) = &artifact.document;
        blobs::put_whole(client, bytes, &document.digest, None, &format!("{name}: the document"))?;
        let (manifest, bytes) = &artifact.manifest;
        let what = format!("{name}: manifest {}: PUT", manifest.digest);
        let request = Request::new("PUT", client.url(&format!("manifests/{}", manifest.digest)))
            .header("content-type", manifest.media_type.clone())
            .body(bytes);
        let r = client.send(request, &what)?;
        match r.status {
            200..=299 => {}
            401 | 403 => return Err(client.unauthorized(&what, &r)),
            _ => return Err(client.error(&what, &r, "")),
        }
        if r.oci_subject.as_deref() != Some(subject.digest.as_str()) {
            unlisted.push(artifact);
        }
    }
    if unlisted.is_empty() {
        return Ok(Attached::ReferrersApi);
    }
    let tag = referrers_tag(&subject.digest);
    add_to_referrers_tag(client, &tag, &unlisted)?;
    Ok(Attached::ReferrersTag(tag))
}

/// Adds `artifacts` to the index under the referrers tag `tag` (a new
/// index when the tag is not there), unless each is listed already.
fn add_to_referrers_tag(client: &Client, tag: &str, artifacts: &[&Artifact]) -> Result<()> {
    let names: Vec<String> = artifacts.iter().map(|a| artifact_name(a)).collect();
    let names = names.join(", ");
    let what = format!("{names}: the referrers tag {tag}: GET");
    // Every kind of manifest is accepted, so that whatever the tag names is
    // seen (distribution answers 404 for a kind not accepted) and anything
    // but an index is left alone.
    let accept = [
        documents::INDEX_MEDIA_TYPE,
        documents::MANIFEST_MEDIA_TYPE,
        super::DOCKER_LIST_MEDIA_TYPE,
        super::DOCKER_MANIFEST_MEDIA_TYPE,
    ]
    .join(", ");
    let request = Request::new("GET", client.url(&format!("manifests/{tag}"))).header("accept", accept);
    let r = client.send(request, &what)?;
    let mut index = match r.status {
        200 => documents::parse_index(r.body.as_bytes()).map_err(|why| {
            Error::new(
                crate::error::ErrorKind::Output,
                format!(
                    "{}: {what}: the tag names something other than an image index ({why}); it is left as it is, \
                     and the SBOMs are not listed under it",
                    client.where_()
                ),
            )
        })?,
        404 => documents::new_index(Vec::new()),
        401 | 403 => return Err(client.unauthorized(&what, &r)),
        _ => return Err(client.error(&what, &r, "")),
    };
    let entries = index["manifests"].as_array_mut().expect("parse_index checks the manifests array");
    let mut added = false;
    for artifact in artifacts {
        let digest = Value::from(artifact.manifest.0.digest.as_str());
        if !entries.iter().any(|e| e.get("digest") == Some(&digest)) {
            entries.push(artifact.referrer_descriptor());
            added = true;
        }
    }
    if !added {
        return Ok(());
    }
    if index.get("mediaType").is_none() {
        index["mediaType"] = Value::from(documents::INDEX_MEDIA_TYPE);
    }
    let bytes = serde_json::to_vec(&index).expect("JSON");
    let what = format!("{names}: the referrers tag {tag}: PUT");
    let request = Request::new("PUT", client.url(&format!("manifests/{tag}")))
        .header("content-type", documents::INDEX_MEDIA_TYPE)
        .body(&bytes);
    let r = client.send(request, &what)?;
    match r.status {
        200..=299 => Ok(()),
        401 | 403 => Err(client.unauthorized(&what, &r)),
        _ => Err(client.error(&what, &r, "")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_referrers_tag_is_the_spec_s() {
        let hex = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        assert_eq!(referrers_tag(&format!("sha256:{hex}")), format!("sha256-{hex}"));
        let long = "a".repeat(100);
        assert_eq!(referrers_tag(&format!("{}:{long}", "b".repeat(40))), format!("{}-{}", "b".repeat(32), "a".repeat(64)));
    }
}
