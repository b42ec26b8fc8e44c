//! The identity of an SBOM document, derived from the image's digest so
//! that the same image gives the same document: SPDX's
//! `documentNamespace` and CycloneDX's `serialNumber` both hold a
//! name-based (version 5, SHA-1) UUID of the digest and the format.

use sha1::{Digest, Sha1};

use super::format::SbomFormat;

/// The namespace of these UUIDs: RFC 4122's namespace for URLs, the
/// name being `guix-docker-native:sbom:<format>:<digest>`.
const URL_NAMESPACE: [u8; 16] = [
    0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8,
];

/// The UUID (lowercase, hyphenated) of the `format` document of the image
/// whose digest is `digest` (`sha256:<hex>`).
pub fn document_uuid(format: SbomFormat, digest: &str) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(URL_NAMESPACE);
    sha1.update(format!("guix-docker-native:sbom:{}:{digest}", format.name()));
    let hash = sha1.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&hash[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_5_uuid_of_the_digest_and_format() {
        let a = document_uuid(SbomFormat::Spdx, "sha256:00");
        assert_eq!(a, document_uuid(SbomFormat::Spdx, "sha256:00"));
        assert_ne!(a, document_uuid(SbomFormat::Spdx, "sha256:01"));
        assert_ne!(a, document_uuid(SbomFormat::CycloneDx, "sha256:00"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "5");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
    }

    #[test]
    fn the_same_uuid_as_other_version_5_implementations() {
        // Python's uuid.uuid5(uuid.NAMESPACE_URL, "guix-docker-native:sbom:spdx:sha256:00").
        assert_eq!(document_uuid(SbomFormat::Spdx, "sha256:00"), "7f9e77c6-3d00-5cb2-a446-1f378b56814f");
    }
}
