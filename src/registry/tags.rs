//! Pointing a push's tags at its manifest, as close to all-or-nothing as
//! the distribution protocol allows.
//!
//! The protocol has no transaction and no compare-and-swap: each tag is a
//! `PUT /v2/NAME/manifests/TAG` of its own.  So a push
//! 1. puts the manifest (or the index) by its digest first, once every
//!    blob is up: from then on the image is whole in the repository and
//!    nothing names a partial one;
//! 2. asks each tag's present manifest (`HEAD`, its `Docker-Content-Digest`)
//!    before moving any: a tag that cannot be asked about fails the push
//!    with no tag moved;
//! 3. moves the tags one after the other;
//! 4. when a tag's `PUT` fails (after the client's retries), puts each tag
//!    already moved back to the manifest it named before (`GET` by that
//!    digest, `PUT` under the tag), if it still names the new one (else
//!    someone else moved it since, and it is left alone).  A tag that named
//!    nothing before stays on the new image: distribution 2.8 cannot delete
//!    a tag, only a manifest, and that would take the image from under the
//!    other tags.  The error says which tags were put back, which are left
//!    on the new image, and which were not moved.

use super::client::{Client, Request};
use crate::error::{Error, Result};

/// Every manifest media type a push writes, for `Accept`.
const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
                      application/vnd.docker.distribution.manifest.v2+json, \
                      application/vnd.docker.distribution.manifest.list.v2+json";

/// PUTs a manifest (or an index) under `reference`: a tag or a digest.
pub fn put_manifest(client: &Client, manifest: &[u8], media_type: &str, reference: &str) -> Result<()> {
    let what = format!("manifest {reference}: PUT");
    let request =
        Request::new("PUT", client.url(&format!("manifests/{reference}"))).header("content-type", media_type).body(manifest);
    let r = client.send(request, &what)?;
    match r.status {
        200..=299 => Ok(()),
        401 | 403 => Err(client.unauthorized(&what, &r)),
        _ => Err(client.error(&what, &r, "")),
    }
}

/// Whether the repository holds the manifest `digest` (`what`, in errors).
pub fn manifest_exists(client: &Client, digest: &str, what: &str) -> Result<bool> {
    let what = format!("{what} {digest}: HEAD");
    let r = client.send(Request::new("HEAD", client.url(&format!("manifests/{digest}"))).header("accept", ACCEPT), &what)?;
    match r.status {
        200 => Ok(true),
        404 => Ok(false),
        401 | 403 => Err(client.unauthorized(&what, &r)),
        _ => Err(client.error(&what, &r, "")),
    }
}

/// The digest of the manifest `tag` names now, `None` when it names none.
pub fn current(client: &Client, tag: &str) -> Result<Option<String>> {
    let what = format!("tag {tag}: HEAD (what it names before it is moved)");
    let r = client.send(Request::new("HEAD", client.url(&format!("manifests/{tag}"))).header("accept", ACCEPT), &what)?;
    match r.status {
        200 => match r.digest {
            Some(d) => Ok(Some(d)),
            None => Err(client.error(&what, &r, "no Docker-Content-Digest in the answer")),
        },
        404 => Ok(None),
        401 | 403 => Err(client.unauthorized(&what, &r)),
        _ => Err(client.error(&what, &r, "")),
    }
}

/// Puts `tag` back to the manifest `previous` if it still names `digest`.
fn restore(client: &Client, tag: &str, previous: &str, digest: &str) -> std::result::Result<(), String> {
    let strip = |e: Error| {
        let prefix = format!("{}: ", client.where_());
        e.message.strip_prefix(&prefix).unwrap_or(&e.message).to_string()
    };
    match current(client, tag).map_err(strip)? {
        Some(now) if now == digest => {}
        Some(now) => return Err(format!("it names {now} now, moved by someone else: left alone")),
        None => return Err("it names nothing now: left alone".into()),
    }
    let what = format!("manifest {previous}: GET");
    let r = client
        .send(Request::new("GET", client.url(&format!("manifests/{previous}"))).header("accept", ACCEPT), &what)
        .map_err(strip)?;
    if r.status != 200 {
        return Err(strip(client.error(&what, &r, "")));
    }
    let media_type = r.content_type.clone().unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".into());
    put_manifest(client, r.body.as_bytes(), &media_type, tag).map_err(strip)
}

fn quoted(tags: &[&String]) -> String {
    tags.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ")
}

/// Moves `tags` to the manifest `document` (already in the repository by
/// its `digest`), as the module says.
pub fn move_tags(client: &Client, document: &[u8], media_type: &str, digest: &str, tags: &[String]) -> Result<()> {
    let mut previous = Vec::with_capacity(tags.len());
    for tag in tags {
        previous.push(current(client, tag)?);
    }
    for (i, tag) in tags.iter().enumerate() {
        let Err(e) = put_manifest(client, document, media_type, tag) else { continue };
        let mut parts = Vec::new();
        for (moved, before) in tags[..i].iter().zip(&previous[..i]) {
            match before {
                Some(old) if old == digest => parts.push(format!("tag '{moved}' named it already")),
                Some(old) => match restore(client, moved, old, digest) {
                    Ok(()) => parts.push(format!("tag '{moved}' was moved to it and put back to {old}")),
                    Err(why) => parts.push(format!("tag '{moved}' now names it (putting back {old} failed: {why})")),
                },
                None => parts.push(format!(
                    "tag '{moved}' now names it (it named nothing before, and a registry cannot remove a tag)"
                )),
            }
        }
        let rest: Vec<&String> = tags[i..].iter().collect();
        let (noun, verb) = if rest.len() == 1 { ("tag", "was") } else { ("tags", "were") };
        parts.push(format!("{noun} {} {verb} not moved", quoted(&rest)));
        return Err(Error::new(
            e.kind,
            format!("{}; the image is in the repository as {digest}; {}", e.message, parts.join("; ")),
        ));
    }
    Ok(())
}
