//! The TLS configuration of a push: the system's CA certificates (found
//! as OpenSSL finds them: `SSL_CERT_FILE`, `SSL_CERT_DIR`, the
//! distribution's bundle) and those of `--cert-dir DIR` (`DIR/*.crt`, as
//! skopeo reads them), or no check at all with `--tls-verify=false`.

use std::path::Path;
use std::sync::Arc;

use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

use crate::error::{Error, ErrorKind, Result};

/// The TLS configuration for `verify` and `cert_dir`.
pub fn config(cert_dir: Option<&Path>, verify: bool) -> Result<TlsConfig> {
    if !verify {
        return Ok(TlsConfig::builder().disable_verification(true).build());
    }
    let mut roots: Vec<Certificate<'static>> = Vec::new();
    let native = rustls_native_certs::load_native_certs();
    for der in &native.certs {
        roots.push(Certificate::from_der(der.as_ref()).to_owned());
    }
    if let Some(dir) = cert_dir {
        roots.extend(cert_dir_certificates(dir)?);
    }
    if roots.is_empty() {
        return Err(Error::new(
            ErrorKind::Output,
            "no CA certificates: none found on the system (SSL_CERT_FILE, SSL_CERT_DIR, /etc/ssl/certs) \
             and no --cert-dir given",
        ));
    }
    Ok(TlsConfig::builder().root_certs(RootCerts::Specific(Arc::new(roots))).build())
}

/// The certificates of `dir/*.crt`, in the order of their names.
fn cert_dir_certificates(dir: &Path) -> Result<Vec<Certificate<'static>>> {
    let bad = |what: String| Error::invalid_argument(format!("cert dir '{}': {what}", dir.display()));
    let entries = std::fs::read_dir(dir).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| bad(format!("cannot read it: {e}")))?;
        let path = entry.path();
        if path.extension().is_some_and(|x| x == "crt") {
            files.push(path);
        }
    }
    files.sort();
    let mut certs = Vec::new();
    for file in files {
        let name = file.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let pem = std::fs::read(&file).map_err(|e| bad(format!("{name}: cannot read it: {e}")))?;
        let before = certs.len();
        for item in ureq::tls::parse_pem(&pem) {
            match item {
                Ok(PemItem::Certificate(cert)) => certs.push(cert),
                Ok(_) => {}
                Err(e) => return Err(bad(format!("{name}: not a PEM certificate ({e})"))),
            }
        }
        if certs.len() == before {
            return Err(bad(format!("{name}: holds no PEM certificate")));
        }
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cert_dir_without_certificates_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.crt"), "not a certificate").unwrap();
        let e = config(Some(dir.path()), true).unwrap_err();
        assert!(e.message.contains("ca.crt") && e.message.contains("cert dir"), "{}", e.message);
        let e = config(Some(&dir.path().join("missing")), true).unwrap_err();
        assert!(e.message.contains("missing': cannot read it"), "{}", e.message);
        // Other files are not read.
        std::fs::remove_file(dir.path().join("ca.crt")).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        config(Some(dir.path()), true).unwrap();
    }
}
