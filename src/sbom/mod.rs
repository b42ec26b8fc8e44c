//! SBOMs of the image: the exact closure it holds, as SPDX 2.3 and
//! CycloneDX 1.5 JSON (`--sbom spdx|cyclonedx`).
//!
//! [`Job::new`] builds the [`Model`] before anything is written (so that a
//! malformed hash in the store database fails the build up front); once
//! the image is written and its digest known, [`Job::documents`] renders
//! the documents, which go to files beside the image ([`PreparedFiles`])
//! and, in an OCI destination, into the layout as artifacts
//! (`crate::oci::artifact`).
//!
//! The parts: [`format`] (the formats), [`name`] (names and versions as
//! Guix splits them), [`nix_base32`] and [`nar_hash`] (the database's hash
//! column), [`license`] (licence expressions), [`options`] (the setters),
//! [`model`] (what an SBOM says), [`identity`] (its namespace),
//! [`spdx`] and [`cyclonedx`] (the writers).

pub mod cyclonedx;
pub mod format;
pub mod identity;
pub mod license;
pub mod model;
pub mod nar_hash;
pub mod name;
pub mod nix_base32;
pub mod options;
pub mod spdx;

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::closure::Closure;
use crate::layers::Unit;
use crate::destination::Destination;
use crate::error::{Error, Result};
use crate::options::ImageOptions;
use crate::output::{descriptor_of, refuse_inputs, Input, Output, OutputFile};
use crate::store::StoreItem;

pub use format::SbomFormat;
pub use model::Model;
pub use options::SbomOptions;

/// One rendered document.
pub struct Document {
    pub format: SbomFormat,
    pub bytes: Vec<u8>,
}

/// The SBOMs a build makes: the model, the formats and the files.
pub struct Job {
    model: Model,
    formats: Vec<SbomFormat>,
    files: Vec<(SbomFormat, PathBuf)>,
}

/// What an SBOM is made from: the image's store items and extras.
pub struct Contents<'a> {
    /// The items asked for; the first is the main item.
    pub roots: &'a [StoreItem],
    pub closure: &'a Closure,
    /// The image's name (its first tag).
    pub image_name: &'a str,
    /// The image's creation time, seconds since the epoch.
    pub created: i64,
    /// The units of the store database the image carries
    /// (`--localstatedir`), named as in the image; empty without one.
    pub image_database: &'a [Unit],
}

impl Job {
    /// The SBOM job of a build of `contents` to `destination`; `None` when
    /// no SBOM is asked for.  `platform` is the system (`aarch64-linux`) of
    /// one image of a multi-platform image of several: its
    /// `--sbom-output` files are then `FILE.SYSTEM.spdx.json` and
    /// `FILE.SYSTEM.cdx.json`.  Everything that can fail before the image
    /// is written fails here: the files' names, the hashes, the licences,
    /// the extra files.
    pub fn new(contents: &Contents, options: &ImageOptions, destination: &Destination, platform: Option<&str>) -> Result<Option<Job>> {
        let asked = &options.sbom;
        if asked.formats.is_empty() {
            if asked.output.is_some() {
                return Err(Error::invalid_argument(
                    "SBOM output: no SBOM format was asked for (--sbom spdx or --sbom cyclonedx)",
                ));
            }
            if !asked.licenses.is_empty() {
                return Err(Error::invalid_argument(
                    "SBOM licences: no SBOM format was asked for (--sbom spdx or --sbom cyclonedx)",
                ));
            }
            return Ok(None);
        }
        let files = output_files(&asked.formats, asked.output.as_deref(), destination, platform)?;
        let image_output = destination.output();
        for (_, file) in &files {
            let out = Output::Path(file.clone());
            crate::output::refuse_build_inputs(&out, options)?;
            if let Some(Output::Path(image)) = &image_output {
                refuse_inputs(&out, &[Input { what: "image output", path: image }], None)?;
            }
        }
        let model = Model::new(contents.roots, contents.closure, contents.image_name, contents.created, options, contents.image_database)?;
        Ok(Some(Job { model, formats: asked.formats.clone(), files }))
    }

    /// The documents of the image whose digest is `image_digest`
    /// (`sha256:<hex>`), in the order asked for.
    pub fn documents(&self, image_digest: &str) -> Vec<Document> {
        self.formats.iter().map(|&format| Document { format, bytes: render(&self.model, format, image_digest) }).collect()
    }

    /// The image's creation time.
    pub fn created(&self) -> i64 {
        self.model.created
    }
}

/// `model` as a `format` document.
pub fn render(model: &Model, format: SbomFormat, image_digest: &str) -> Vec<u8> {
    match format {
        SbomFormat::Spdx => spdx::document(model, image_digest),
        SbomFormat::CycloneDx => cyclonedx::document(model, image_digest),
    }
}

/// Where the documents go besides the image: `--sbom-output FILE` (with
/// several formats, `FILE.spdx.json`, `FILE.cdx.json`; for the image of
/// `platform`, one of several, `FILE.SYSTEM.spdx.json`, ... whatever the
/// formats); without it, beside a docker-archive file (`IMAGE.spdx.json`,
/// ...), and nowhere else for an OCI destination (the layout holds them)
/// or a registry (which gets them as artifacts).
fn output_files(
    formats: &[SbomFormat],
    output: Option<&Path>,
    destination: &Destination,
    platform: Option<&str>,
) -> Result<Vec<(SbomFormat, PathBuf)>> {
    let with_suffix = |base: &Path, f: SbomFormat| {
        let mut name = base.as_os_str().to_owned();
        if let Some(system) = platform {
            name.push(format!(".{system}"));
        }
        name.push(f.suffix());
        PathBuf::from(name)
    };
    match (output, destination) {
        (Some(file), _) if formats.len() == 1 && platform.is_none() => Ok(vec![(formats[0], file.to_path_buf())]),
        (Some(file), _) => Ok(formats.iter().map(|&f| (f, with_suffix(file, f))).collect()),
        (None, Destination::DockerArchive(Output::Path(image)))
            if descriptor_of(image).is_none() && std::fs::metadata(image).map_or(true, |m| m.is_file()) =>
        {
            Ok(formats.iter().map(|&f| (f, with_suffix(image, f))).collect())
        }
        (None, Destination::DockerArchive(_)) => Err(Error::invalid_argument(
            "SBOM: the image goes to standard output, a device or a pipe, so the SBOM cannot go beside it; \
             name its file with --sbom-output FILE",
        )),
        (None, _) => Ok(Vec::new()),
    }
}

/// The SBOM files of a build, written and waiting to be named: committed
/// just before the image is, and removed again if the image then fails, so
/// that a failed build leaves neither.
#[derive(Default)]
pub struct PreparedFiles {
    pending: Vec<OutputFile>,
    /// Regular files named so far (removed unless kept).
    committed: Vec<PathBuf>,
    keep: bool,
}

impl PreparedFiles {
    /// Writes `job`'s files of the image `image_digest` (none without a job).
    pub fn write(job: Option<&Job>, image_digest: &str) -> Result<PreparedFiles> {
        let mut prepared = PreparedFiles::default();
        let Some(job) = job else { return Ok(prepared) };
        if job.files.is_empty() {
            return Ok(prepared);
        }
        let documents = job.documents(image_digest);
        for (format, path) in &job.files {
            let bytes = &documents.iter().find(|d| d.format == *format).expect("a document per format").bytes;
            let out = OutputFile::open(&Output::Path(path.clone()))?;
            (&out.file).write_all(bytes).map_err(|e| Error::output(&out.display_path(), &e))?;
            prepared.pending.push(out);
        }
        Ok(prepared)
    }

    /// Names the files.
    pub fn commit(&mut self) -> Result<()> {
        for out in std::mem::take(&mut self.pending) {
            let regular = out.is_seekable().then(|| out.display_path());
            out.commit()?;
            self.committed.extend(regular);
        }
        Ok(())
    }

    /// Takes `other`'s files in with these.
    pub fn absorb(&mut self, mut other: PreparedFiles) {
        self.pending.append(&mut other.pending);
        self.committed.append(&mut other.committed);
    }

    /// The image is there: the files stay.
    pub fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for PreparedFiles {
    fn drop(&mut self) {
        if !self.keep {
            for path in &self.committed {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}
