//! What the cache remembers of one layer, and its file format.
//!
//! A [`Record`] holds the layer's `diff_id` and uncompressed size, and for
//! each way it was compressed ([`Blob`]: compression, level and the
//! compressor's format) the compressed blob's digest and size, with the
//! registries' repositories known to hold that blob ([`Location`]).
//!
//! On disk a record is three lines of text:
//!
//! ```text
//! guix-docker-native layer cache 1
//! {"key":"<hex>","diff_id":"sha256:<hex>","size":N,"blobs":[...]}
//! sha256:<hex of the two lines above, newlines included>
//! ```
//!
//! [`Record::decode`] accepts only exactly that: the header, a checksum that
//! matches, JSON of the expected shape, digests of 64 lower-case hex
//! digits, and the key the file is named by.  Anything else (a truncated
//! file, garbage, an entry copied under another name) is corrupt, and the
//! caller treats it as absent.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::options::Compression;

/// The first line of every record file.
pub const HEADER: &str = "guix-docker-native layer cache 1";

/// A record file larger than this is corrupt (a record with every
/// compression and [`MAX_LOCATIONS`] locations each is far smaller).
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// Locations kept per blob; adding one more forgets the oldest.
pub const MAX_LOCATIONS: usize = 32;

/// A repository of a registry that holds a blob: where a push may mount it
/// from (`POST /v2/<repository>/blobs/uploads/?mount=...&from=...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// `HOST[:PORT]`, as in `docker://HOST[:PORT]/REPOSITORY`.
    pub registry: String,
    /// The repository's name (`library/hello`).
    pub repository: String,
}

/// One compressed form of the layer: a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub compression: Compression,
    /// The compression level it was made with (0 for none).
    pub level: i32,
    /// The compressor's output format (see [`super::compressor_format`]):
    /// two builds with the same compression, level and format make the
    /// same bytes.  Empty for an uncompressed blob.
    pub format: String,
    /// SHA-256 of the blob.
    pub digest: [u8; 32],
    /// Length of the blob in bytes.
    pub size: u64,
    /// Where it is known to be, oldest first.
    pub locations: Vec<Location>,
}

/// What the cache knows of one layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The key it is filed under (see [`super::key`]).
    pub key: [u8; 32],
    /// SHA-256 of the layer's uncompressed tar.
    pub diff_id: [u8; 32],
    /// Length of the uncompressed tar.
    pub size: u64,
    /// Its blobs, one per (compression, level, format); the uncompressed
    /// one (digest the `diff_id`) among them.
    pub blobs: Vec<Blob>,
}

fn compression_name(c: Compression) -> &'static str {
    match c {
        Compression::None => "none",
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
    }
}

fn digest_string(d: &[u8; 32]) -> String {
    format!("sha256:{}", hex::encode(d))
}

fn parse_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

fn parse_digest(v: &Value) -> Option<[u8; 32]> {
    parse_hex(v.as_str()?.strip_prefix("sha256:")?)
}

impl Record {
    /// A record of a layer whose tar has `diff_id` and `size`: it knows the
    /// uncompressed blob (which is the tar).
    pub fn new(key: [u8; 32], diff_id: [u8; 32], size: u64) -> Record {
        let tar = Blob {
            compression: Compression::None,
            level: 0,
            format: String::new(),
            digest: diff_id,
            size,
            locations: Vec::new(),
        };
        Record { key, diff_id, size, blobs: vec![tar] }
    }

    /// The blob made with `compression` at `level` in `format`, if known.
    /// (The uncompressed blob is found with any level and format.)
    pub fn blob(&self, compression: Compression, level: i32, format: &str) -> Option<&Blob> {
        self.blobs.iter().find(|b| {
            b.compression == compression && (compression == Compression::None || (b.level == level && b.format == format))
        })
    }

    /// The blob of digest `digest`, if known.
    pub fn blob_by_digest(&self, digest: &[u8; 32]) -> Option<&Blob> {
        self.blobs.iter().find(|b| &b.digest == digest)
    }

    /// Adds (or replaces) the blob made with its compression, level and
    /// format; returns whether the record changed.  A replaced blob's
    /// locations are kept when its digest is the same.
    pub fn add_blob(&mut self, compression: Compression, level: i32, format: &str, digest: [u8; 32], size: u64) -> bool {
        let (level, format) = if compression == Compression::None { (0, "") } else { (level, format) };
        if let Some(b) = self.blobs.iter_mut().find(|b| b.compression == compression && b.level == level && b.format == format) {
            if b.digest == digest && b.size == size {
                return false;
            }
            *b = Blob { compression, level, format: format.to_string(), digest, size, locations: Vec::new() };
            return true;
        }
        self.blobs.push(Blob { compression, level, format: format.to_string(), digest, size, locations: Vec::new() });
        true
    }

    /// Records that the repository `repository` of the registry `registry`
    /// (`HOST[:PORT]`) holds the blob of digest `digest`; returns whether
    /// the record changed (false when it was known, or when no blob of
    /// that digest is in the record).  At most [`MAX_LOCATIONS`] are kept
    /// per blob, the most recent.
    pub fn add_location(&mut self, digest: &[u8; 32], registry: &str, repository: &str) -> bool {
        let mut changed = false;
        for b in self.blobs.iter_mut().filter(|b| &b.digest == digest) {
            let location = Location { registry: registry.to_string(), repository: repository.to_string() };
            if let Some(i) = b.locations.iter().position(|l| *l == location) {
                // Known: it becomes the most recent.
                if i + 1 != b.locations.len() {
                    let l = b.locations.remove(i);
                    b.locations.push(l);
                    changed = true;
                }
                continue;
            }
            b.locations.push(location);
            if b.locations.len() > MAX_LOCATIONS {
                b.locations.remove(0);
            }
            changed = true;
        }
        changed
    }

    /// The repositories of `registry` known to hold the blob `digest`,
    /// most recent first.
    pub fn locations_in<'a>(&'a self, digest: &[u8; 32], registry: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.blob_by_digest(digest)
            .into_iter()
            .flat_map(move |b| b.locations.iter().rev().filter(move |l| l.registry == registry))
            .map(|l| l.repository.as_str())
    }

    /// Adds what `other` (a record of the same layer, read again from the
    /// cache) knows and this one does not: so that two builds writing one
    /// entry at once lose little.  Nothing is added when `other` is of
    /// another key or another tar.
    pub fn merge(&mut self, other: &Record) {
        if (other.key, other.diff_id, other.size) != (self.key, self.diff_id, self.size) {
            return;
        }
        for ob in &other.blobs {
            if self.blob(ob.compression, ob.level, &ob.format).is_none() {
                self.blobs.push(ob.clone());
                continue;
            }
            for l in &ob.locations {
                let known = self
                    .blobs
                    .iter()
                    .any(|b| b.digest == ob.digest && b.locations.contains(l));
                if !known {
                    // Older than what this build saw: put before it.
                    if let Some(b) = self.blobs.iter_mut().find(|b| b.digest == ob.digest) {
                        b.locations.insert(0, l.clone());
                        b.locations.truncate(MAX_LOCATIONS.max(1));
                    }
                }
            }
        }
    }

    /// The record's file contents.
    pub fn encode(&self) -> Vec<u8> {
        let blobs: Vec<Value> = self
            .blobs
            .iter()
            .map(|b| {
                let locations: Vec<Value> =
                    b.locations.iter().map(|l| json!({"registry": l.registry, "repository": l.repository})).collect();
                json!({
                    "compression": compression_name(b.compression),
                    "level": b.level,
                    "format": b.format,
                    "digest": digest_string(&b.digest),
                    "size": b.size,
                    "locations": locations,
                })
            })
            .collect();
        let body = json!({
            "key": hex::encode(self.key),
            "diff_id": digest_string(&self.diff_id),
            "size": self.size,
            "blobs": blobs,
        });
        let mut out = format!("{HEADER}\n{}\n", serde_json::to_string(&body).expect("JSON")).into_bytes();
        let sum = Sha256::digest(&out);
        out.extend_from_slice(format!("sha256:{}\n", hex::encode(sum)).as_bytes());
        out
    }

    /// Reads a record file's contents, which must be filed under `key`;
    /// `Err` says what is wrong with it.
    pub fn decode(bytes: &[u8], key: &[u8; 32]) -> Result<Record, String> {
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(format!("{} bytes, more than a record can have", bytes.len()));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| "not text".to_string())?;
        let Some(body_end) = text.strip_suffix('\n').and_then(|t| t.rfind('\n')) else {
            return Err("truncated (no checksum line)".into());
        };
        let (signed, sum_line) = (&text[..=body_end], &text[body_end + 1..text.len() - 1]);
        let sum = sum_line.strip_prefix("sha256:").and_then(parse_hex).ok_or("no checksum line")?;
        if <[u8; 32]>::from(Sha256::digest(signed.as_bytes())) != sum {
            return Err("its checksum does not match its contents".into());
        }
        let Some((header, body)) = signed.strip_suffix('\n').and_then(|s| s.split_once('\n')) else {
            return Err("no header line".into());
        };
        if header != HEADER {
            return Err(format!("its first line is not '{HEADER}'"));
        }
        let v: Value = serde_json::from_str(body).map_err(|e| format!("bad JSON: {e}"))?;
        let bad = |what: &str| format!("bad field '{what}'");
        let filed = v.get("key").and_then(Value::as_str).and_then(parse_hex).ok_or_else(|| bad("key"))?;
        if &filed != key {
            return Err("it is the record of another key".into());
        }
        let diff_id = v.get("diff_id").and_then(parse_digest).ok_or_else(|| bad("diff_id"))?;
        let size = v.get("size").and_then(Value::as_u64).ok_or_else(|| bad("size"))?;
        let mut record = Record { key: filed, diff_id, size, blobs: Vec::new() };
        for b in v.get("blobs").and_then(Value::as_array).ok_or_else(|| bad("blobs"))? {
            let b: &Map<String, Value> = b.as_object().ok_or_else(|| bad("blobs"))?;
            let compression = match b.get("compression").and_then(Value::as_str) {
                Some("none") => Compression::None,
                Some("gzip") => Compression::Gzip,
                Some("zstd") => Compression::Zstd,
                _ => return Err(bad("compression")),
            };
            let level = b.get("level").and_then(Value::as_i64).and_then(|l| i32::try_from(l).ok()).ok_or_else(|| bad("level"))?;
            let format = b.get("format").and_then(Value::as_str).ok_or_else(|| bad("format"))?.to_string();
            let digest = b.get("digest").and_then(parse_digest).ok_or_else(|| bad("digest"))?;
            let blob_size = b.get("size").and_then(Value::as_u64).ok_or_else(|| bad("blobs.size"))?;
            if compression == Compression::None && (digest != diff_id || blob_size != size) {
                return Err("its uncompressed blob is not its tar".into());
            }
            let mut locations = Vec::new();
            for l in b.get("locations").and_then(Value::as_array).ok_or_else(|| bad("locations"))? {
                let registry = l.get("registry").and_then(Value::as_str).ok_or_else(|| bad("registry"))?;
                let repository = l.get("repository").and_then(Value::as_str).ok_or_else(|| bad("repository"))?;
                locations.push(Location { registry: registry.to_string(), repository: repository.to_string() });
            }
            record.blobs.push(Blob { compression, level, format, digest, size: blob_size, locations });
        }
        if record.blob(Compression::None, 0, "").is_none() {
            return Err("it has no uncompressed blob".into());
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        let mut r = Record::new([7; 32], [1; 32], 10240);
        r.add_blob(Compression::Gzip, 6, "gzip-f", [2; 32], 900);
        r.add_blob(Compression::Zstd, 3, "zstd-f", [3; 32], 800);
        r.add_location(&[2; 32], "127.0.0.1:5000", "library/hello");
        r
    }

    #[test]
    fn a_record_reads_back_as_written() {
        let r = sample();
        let bytes = r.encode();
        assert!(bytes.len() < 1024, "a record is a few hundred bytes: {}", bytes.len());
        assert_eq!(Record::decode(&bytes, &[7; 32]).unwrap(), r);
        assert_eq!(r.blob(Compression::Gzip, 6, "gzip-f").unwrap().digest, [2; 32]);
        assert!(r.blob(Compression::Gzip, 9, "gzip-f").is_none());
        assert!(r.blob(Compression::Gzip, 6, "gzip-other").is_none());
        assert_eq!(r.blob(Compression::None, 0, "").unwrap().digest, [1; 32]);
        assert_eq!(r.locations_in(&[2; 32], "127.0.0.1:5000").collect::<Vec<_>>(), ["library/hello"]);
        assert_eq!(r.locations_in(&[2; 32], "other:5000").count(), 0);
    }

    #[test]
    fn every_damage_is_refused() {
        let bytes = sample().encode();
        for cut in [0, 1, 10, bytes.len() / 2, bytes.len() - 2, bytes.len() - 1] {
            assert!(Record::decode(&bytes[..cut], &[7; 32]).is_err(), "truncated at {cut}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x20;
            assert!(Record::decode(&b, &[7; 32]).is_err(), "byte {i} flipped");
        }
        assert!(Record::decode(&bytes, &[8; 32]).is_err(), "another key");
        assert!(Record::decode(b"\0\0garbage\n\xff", &[7; 32]).is_err());
    }

    #[test]
    fn locations_are_bounded_and_most_recent_first() {
        let mut r = sample();
        for i in 0..40 {
            r.add_location(&[2; 32], "r:1", &format!("repo{i}"));
        }
        assert!(!r.add_location(&[9; 32], "r:1", "x"), "no blob of that digest");
        let b = r.blob_by_digest(&[2; 32]).unwrap();
        assert_eq!(b.locations.len(), MAX_LOCATIONS);
        assert_eq!(r.locations_in(&[2; 32], "r:1").next(), Some("repo39"));
        assert!(!r.add_location(&[2; 32], "r:1", "repo39"), "already the most recent");
    }

    #[test]
    fn merge_keeps_both_builds_knowledge() {
        let mut a = Record::new([7; 32], [1; 32], 10240);
        a.add_blob(Compression::Gzip, 6, "g", [2; 32], 900);
        let mut b = Record::new([7; 32], [1; 32], 10240);
        b.add_blob(Compression::Zstd, 3, "z", [3; 32], 800);
        b.add_location(&[1; 32], "r:1", "x");
        a.merge(&b);
        assert!(a.blob(Compression::Zstd, 3, "z").is_some());
        assert_eq!(a.locations_in(&[1; 32], "r:1").collect::<Vec<_>>(), ["x"]);
        let other = Record::new([7; 32], [4; 32], 10240);
        let before = a.clone();
        a.merge(&other);
        assert_eq!(a, before, "another tar is not merged");
    }
}
