//! What a caller asks of the SBOM, set through [`ImageOptions`]' setters
//! (the CLI's `--sbom`, `--sbom-output`, `--sbom-license`, the C ABI's
//! `gdn_options_add_sbom`, ..., Guile's `#:sbom`, ...).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::format::SbomFormat;
use super::license;
use crate::error::{Error, Result};
use crate::options::ImageOptions;

/// The SBOM part of the options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SbomOptions {
    /// The formats asked for, each once, in the order first asked.
    pub formats: Vec<SbomFormat>,
    /// Where the documents go besides the image (see [`super::outputs`]).
    pub output: Option<PathBuf>,
    /// Licence expressions by store item path.
    pub licenses: BTreeMap<PathBuf, String>,
}

impl ImageOptions {
    /// Asks for an SBOM in `format` (asking twice is asking once).
    pub fn add_sbom(&mut self, format: SbomFormat) {
        if !self.sbom.formats.contains(&format) {
            self.sbom.formats.push(format);
        }
    }

    /// Writes the SBOM to `file` beside the image: with one format, `file`
    /// itself; with several, `file` followed by each format's suffix
    /// (`.spdx.json`, `.cdx.json`).
    pub fn set_sbom_output(&mut self, file: &Path) -> Result<()> {
        if file.as_os_str().is_empty() {
            return Err(Error::invalid_argument("SBOM output '': empty file name"));
        }
        self.sbom.output = Some(file.to_path_buf());
        Ok(())
    }

    /// Declares the licence of the store item `item` (its absolute path)
    /// in the SBOM: an SPDX licence expression such as `GPL-3.0-or-later`
    /// (checked for its syntax; `GPL 3+`, Guix's name, is refused).  The
    /// last one given for an item counts.
    pub fn add_sbom_license(&mut self, item: &Path, expression: &str) -> Result<()> {
        if !item.is_absolute() {
            return Err(Error::invalid_argument(format!(
                "SBOM licence for '{}': not an absolute store item path",
                item.display()
            )));
        }
        license::check_expression(expression).map_err(|why| {
            Error::invalid_argument(format!(
                "SBOM licence '{expression}' for {}: not an SPDX licence expression: {why}",
                item.display()
            ))
        })?;
        self.sbom.licenses.insert(item.to_path_buf(), expression.to_string());
        Ok(())
    }

    /// The SBOM formats asked for.
    pub fn sbom_formats(&self) -> &[SbomFormat] {
        &self.sbom.formats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setters_check_and_keep_their_values() {
        let mut o = ImageOptions::new();
        o.add_sbom(SbomFormat::CycloneDx);
        o.add_sbom(SbomFormat::Spdx);
        o.add_sbom(SbomFormat::CycloneDx);
        assert_eq!(o.sbom_formats(), [SbomFormat::CycloneDx, SbomFormat::Spdx]);
        assert!(o.set_sbom_output(Path::new("")).is_err());
        o.set_sbom_output(Path::new("x.json")).unwrap();
        let item = Path::new("/gnu/store/00000000000000000000000000000000-hello-2.12");
        let e = o.add_sbom_license(item, "GPL 3+").unwrap_err();
        assert!(e.message.contains("'GPL 3+'") && e.message.contains("hello-2.12"), "{}", e.message);
        assert!(o.add_sbom_license(Path::new("hello"), "MIT").is_err());
        o.add_sbom_license(item, "GPL-3.0-or-later").unwrap();
        assert_eq!(o.sbom.licenses[item], "GPL-3.0-or-later");
    }
}
