//! The TLS configuration of a push: the system's CA certificates (found
//! as OpenSSL finds them: `SSL_CERT_FILE`, `SSL_CERT_DIR`, the
//! distribution's bundle) and those of `--cert-dir DIR` (`DIR/*.crt`, as
//! skopeo reads them), or no check at all with `--tls-verify=false`; and,
//! as skopeo and docker's `certs.d` have it, a client certificate for a
//! registry that asks for one: `DIR/NAME.cert` with its key `DIR/NAME.key`
//! (PEM; the chain may follow the certificate).  A `.cert` without its
//! `.key`, or a `.key` without its `.cert`, is refused; with several
//! pairs, the first by name is used (rustls presents one certificate).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

use crate::error::{Error, ErrorKind, Result};

/// The TLS configuration for `verify` and `cert_dir`.
pub fn config(cert_dir: Option<&Path>, verify: bool) -> Result<TlsConfig> {
    let client = match cert_dir {
        Some(dir) => client_certificate(dir)?,
        None => None,
    };
    if !verify {
        return Ok(TlsConfig::builder().disable_verification(true).client_cert(client).build());
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
    Ok(TlsConfig::builder().root_certs(RootCerts::Specific(Arc::new(roots))).client_cert(client).build())
}

/// The files of `dir` whose names end in `.EXTENSION`, sorted.
fn files_ending(dir: &Path, extension: &str) -> Result<Vec<PathBuf>> {
    let bad = |what: String| Error::invalid_argument(format!("cert dir '{}': {what}", dir.display()));
    let entries = std::fs::read_dir(dir).map_err(|e| bad(format!("cannot read it: {e}")))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| bad(format!("cannot read it: {e}")))?.path();
        if path.extension().is_some_and(|x| x == extension) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The client certificate of `dir` (`NAME.cert` and `NAME.key`), if any,
/// checked here (its key must be the certificate's), not in the middle
/// of a handshake.
fn client_certificate(dir: &Path) -> Result<Option<ClientCert>> {
    let bad = |what: String| Error::invalid_argument(format!("cert dir '{}': {what}", dir.display()));
    let name = |p: &Path| p.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let certs = files_ending(dir, "cert")?;
    for key in files_ending(dir, "key")? {
        if !key.with_extension("cert").exists() {
            return Err(bad(format!("{}: a client key without its certificate {}", name(&key), name(&key.with_extension("cert")))));
        }
    }
    for cert in &certs {
        if !cert.with_extension("key").exists() {
            return Err(bad(format!("{}: a client certificate without its key {}", name(cert), name(&cert.with_extension("key")))));
        }
    }
    let Some(cert_file) = certs.first() else { return Ok(None) };
    let key_file = cert_file.with_extension("key");
    let (cert_name, key_name) = (name(cert_file), name(&key_file));
    let pem = std::fs::read(cert_file).map_err(|e| bad(format!("{cert_name}: cannot read it: {e}")))?;
    let mut chain = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(PemItem::Certificate(c)) => chain.push(c),
            Ok(_) => {}
            Err(e) => return Err(bad(format!("{cert_name}: not a PEM certificate ({e})"))),
        }
    }
    if chain.is_empty() {
        return Err(bad(format!("{cert_name}: holds no PEM certificate")));
    }
    let pem = std::fs::read(&key_file).map_err(|e| bad(format!("{key_name}: cannot read it: {e}")))?;
    let key = PrivateKey::from_pem(&pem).map_err(|_| bad(format!("{key_name}: holds no PEM private key (PKCS#1, PKCS#8 or SEC1)")))?;
    // What rustls checks when the configuration is made (where ureq would
    // panic on a mismatch): the key is usable and is the certificate's.
    let provider = rustls::crypto::ring::default_provider();
    let der_chain = chain.iter().map(|c| rustls::pki_types::CertificateDer::from(c.der().to_vec())).collect();
    use rustls::pki_types::pem::PemObject;
    let der_key = rustls::pki_types::PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| bad(format!("{key_name}: not a private key rustls reads ({e})")))?;
    rustls::sign::CertifiedKey::from_der(der_chain, der_key, &provider)
        .map_err(|e| bad(format!("{key_name}: not the key of {cert_name} ({e})")))?;
    Ok(Some(ClientCert::new_with_certs(&chain, key)))
}

/// The certificates of `dir/*.crt`, in the order of their names.
fn cert_dir_certificates(dir: &Path) -> Result<Vec<Certificate<'static>>> {
    let bad = |what: String| Error::invalid_argument(format!("cert dir '{}': {what}", dir.display()));
    let files = files_ending(dir, "crt")?;
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
