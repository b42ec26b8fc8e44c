//! The SBOM formats: SPDX 2.3 JSON and CycloneDX 1.5 JSON.

use crate::error::{Error, Result};

/// An SBOM format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SbomFormat {
    /// SPDX 2.3, JSON (`application/spdx+json`).
    Spdx,
    /// CycloneDX 1.5, JSON (`application/vnd.cyclonedx+json`).
    CycloneDx,
}

impl SbomFormat {
    /// Every format, in the order `--help` lists them.
    pub const ALL: [SbomFormat; 2] = [SbomFormat::Spdx, SbomFormat::CycloneDx];

    /// Parses `spdx` or `cyclonedx`, the names `--sbom` takes.
    pub fn parse(name: &str) -> Result<SbomFormat> {
        match name {
            "spdx" => Ok(SbomFormat::Spdx),
            "cyclonedx" => Ok(SbomFormat::CycloneDx),
            _ => Err(Error::invalid_argument(format!("SBOM format '{name}': unknown; expected spdx or cyclonedx"))),
        }
    }

    /// The name `--sbom` takes.
    pub fn name(self) -> &'static str {
        match self {
            SbomFormat::Spdx => "spdx",
            SbomFormat::CycloneDx => "cyclonedx",
        }
    }

    /// The media type: the artifact type of its OCI artifact manifest and
    /// the media type of its blob.
    pub fn media_type(self) -> &'static str {
        match self {
            SbomFormat::Spdx => "application/spdx+json",
            SbomFormat::CycloneDx => "application/vnd.cyclonedx+json",
        }
    }

    /// The file name suffix each format's documentation recommends.
    pub fn suffix(self) -> &'static str {
        match self {
            SbomFormat::Spdx => ".spdx.json",
            SbomFormat::CycloneDx => ".cdx.json",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SbomFormat;

    #[test]
    fn names_round_trip_and_unknown_ones_are_named() {
        for f in SbomFormat::ALL {
            assert_eq!(SbomFormat::parse(f.name()).unwrap(), f);
        }
        let e = SbomFormat::parse("swid").unwrap_err();
        assert!(e.message.contains("'swid'") && e.message.contains("spdx or cyclonedx"), "{}", e.message);
    }
}
