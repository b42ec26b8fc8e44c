//! What a push can be told besides the image: credentials, TLS, the
//! manifest format, how many layers upload at once, and who hears of each
//! layer's state.  Set through [`ImageOptions`]'s setters below (the CLI's
//! options, the C setters and the Guile keywords use them).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::credentials::{Credentials, Secret};
use crate::error::{Error, Result};
use crate::options::ImageOptions;

/// The manifest a push writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ManifestFormat {
    /// `application/vnd.oci.image.manifest.v1+json`, the OCI config and
    /// layer media types.
    #[default]
    Oci,
    /// Docker's schema 2 (`application/vnd.docker.distribution.manifest.v2+json`),
    /// for registries and tools that need it; gzip or uncompressed layers only.
    Docker,
}

impl ManifestFormat {
    /// Parses `oci` or `docker`.
    pub fn parse(name: &str) -> Result<ManifestFormat> {
        match name {
            "oci" => Ok(ManifestFormat::Oci),
            "docker" => Ok(ManifestFormat::Docker),
            _ => Err(Error::invalid_argument(format!("manifest format '{name}': unknown; expected oci or docker"))),
        }
    }
}

/// Layers uploaded at once by default.
pub const DEFAULT_JOBS: usize = 4;
/// At most this many layers upload at once.
pub const MAX_JOBS: usize = 64;

/// What one layer of a push is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerState {
    /// Not started.
    Waiting,
    /// Being produced; its bytes go up as they come (`sent` so far).
    Uploading {
        /// Compressed bytes the registry has acknowledged.
        sent: u64,
    },
    /// Produced whole, its digest known before a byte was sent, and the
    /// registry had it: nothing sent.
    Skipped,
    /// Mounted from another repository of the registry.
    Mounted {
        /// The repository it came from.
        from: String,
    },
    /// Uploaded whole.
    Uploaded,
}

/// One layer's line of a push's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerReport {
    /// What it is doing.
    pub state: LayerState,
    /// `sha256:…`, once known.
    pub digest: Option<String>,
    /// The blob's size, once known.
    pub size: Option<u64>,
}

/// Where a push stands: every layer's state, the config's, and the
/// manifest once pushed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PushReport {
    /// `docker://HOST/REPOSITORY`.
    pub repository: String,
    /// Each layer, bottom first.
    pub layers: Vec<LayerReport>,
    /// The config: `None` until decided, then whether it was already there.
    pub config_present: Option<bool>,
    /// The manifest's digest and the tags it was pushed under, at the end.
    pub manifest: Option<(String, Vec<String>)>,
}

/// Called with the push's report, on the thread that called the build,
/// at most ten times a second and once at the end.
pub type PushProgressFn = Arc<dyn Fn(&PushReport) + Send + Sync>;

/// The registry options of an [`ImageOptions`].
#[derive(Clone, Default)]
pub struct RegistryOptions {
    pub(crate) credentials: Option<Credentials>,
    /// CA certificates (`*.crt`) added to the system's, as skopeo's `--cert-dir`.
    pub(crate) cert_dir: Option<PathBuf>,
    /// `false`: no certificate check, and plain HTTP when the registry does
    /// not speak TLS.
    pub(crate) tls_verify: Option<bool>,
    pub(crate) manifest_format: ManifestFormat,
    /// 0: [`DEFAULT_JOBS`].
    pub(crate) jobs: usize,
    pub(crate) push_progress: Option<PushProgressFn>,
    /// Blobs known to be in other repositories of the registry (digest,
    /// repository), which a push mounts rather than uploads when it needs
    /// them.  Fed by a layer cache (not yet there); see [`super::push`].
    pub(crate) mount_hints: Vec<(String, String)>,
}

impl RegistryOptions {
    /// Whether certificates are checked (default: yes).
    pub fn tls_verify(&self) -> bool {
        self.tls_verify.unwrap_or(true)
    }

    /// Layers uploaded at once.
    pub fn jobs(&self) -> usize {
        if self.jobs == 0 {
            DEFAULT_JOBS
        } else {
            self.jobs
        }
    }
}

impl ImageOptions {
    /// The credentials for the registry (skopeo's `--creds USER:PASSWORD`);
    /// `None` forgets them.
    pub fn set_registry_credentials(&mut self, user: &str, password: &str) -> Result<()> {
        if user.is_empty() || user.contains(':') {
            return Err(Error::invalid_argument(format!(
                "registry credentials: user '{user}': {}",
                if user.is_empty() { "empty" } else { "may not contain ':'" }
            )));
        }
        if password.is_empty() {
            return Err(Error::invalid_argument(format!("registry credentials: no password for user '{user}'")));
        }
        self.registry.credentials = Some(Credentials { username: user.into(), password: Secret::new(password) });
        Ok(())
    }

    /// Forgets the credentials given.
    pub fn clear_registry_credentials(&mut self) {
        self.registry.credentials = None;
    }

    /// The user of the credentials given, if any (the password is never given back).
    pub fn registry_user(&self) -> Option<&str> {
        self.registry.credentials.as_ref().map(|c| c.username.as_str())
    }

    /// A directory of CA certificates (`*.crt`) trusted besides the system's.
    pub fn set_cert_dir(&mut self, dir: Option<&Path>) -> Result<()> {
        if let Some(dir) = dir {
            if dir.as_os_str().is_empty() {
                return Err(Error::invalid_argument("cert dir '': empty"));
            }
        }
        self.registry.cert_dir = dir.map(Path::to_path_buf);
        Ok(())
    }

    /// The certificate directory, if any.
    pub fn cert_dir(&self) -> Option<&Path> {
        self.registry.cert_dir.as_deref()
    }

    /// `false`: accept any certificate, and plain HTTP.
    pub fn set_tls_verify(&mut self, verify: bool) {
        self.registry.tls_verify = Some(verify);
    }

    /// Whether certificates are checked.
    pub fn tls_verify(&self) -> bool {
        self.registry.tls_verify()
    }

    /// The manifest format of a push.
    pub fn set_manifest_format(&mut self, format: ManifestFormat) {
        self.registry.manifest_format = format;
    }

    /// The manifest format of a push.
    pub fn manifest_format(&self) -> ManifestFormat {
        self.registry.manifest_format
    }

    /// Layers uploaded at once (0: the default, [`DEFAULT_JOBS`]).
    pub fn set_push_jobs(&mut self, jobs: usize) -> Result<()> {
        if jobs > MAX_JOBS {
            return Err(Error::invalid_argument(format!("jobs {jobs}: at most {MAX_JOBS} layers upload at once")));
        }
        self.registry.jobs = jobs;
        Ok(())
    }

    /// Layers uploaded at once.
    pub fn push_jobs(&self) -> usize {
        self.registry.jobs()
    }

    /// Who hears of each layer's state during a push.
    pub fn set_push_progress(&mut self, progress: Option<PushProgressFn>) {
        self.registry.push_progress = progress;
    }

    /// A blob (`sha256:…`) known to be in `repository` of the same
    /// registry: a push that needs it mounts it from there.
    pub fn add_mount_hint(&mut self, digest: &str, repository: &str) -> Result<()> {
        let hex = digest.strip_prefix("sha256:").unwrap_or("");
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
            return Err(Error::invalid_argument(format!("mount hint '{digest}': expected sha256: and 64 lowercase hex digits")));
        }
        if repository.is_empty() || !repository.split('/').all(crate::reference::valid_path_component) {
            return Err(Error::invalid_argument(format!("mount hint: repository '{repository}' is not a repository name")));
        }
        self.registry.mount_hints.push((digest.to_string(), repository.to_string()));
        Ok(())
    }
}
