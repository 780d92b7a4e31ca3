//! Reading PEM files: certificate chains, private keys and CA bundles.
//!
//! Reads are bounded ([`MAX_PEM_FILE_BYTES`]) so a wrong path (a log file, a device) cannot
//! make the gateway swallow gigabytes, and every error names the file and what it should hold.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;

use super::TlsError;

/// The largest PEM file read (certificate chains and CA bundles are a few hundred KiB at most).
pub const MAX_PEM_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Reads a whole file, refusing anything larger than [`MAX_PEM_FILE_BYTES`].
fn read_bounded(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    let read_err = |cause| TlsError::Read {
        what,
        path: path.to_owned(),
        cause,
    };
    let mut buf = Vec::new();
    File::open(path)
        .and_then(|f| f.take(MAX_PEM_FILE_BYTES + 1).read_to_end(&mut buf))
        .map_err(read_err)?;
    if buf.len() as u64 > MAX_PEM_FILE_BYTES {
        return Err(invalid(path, what, "file larger than 4 MiB"));
    }
    Ok(buf)
}

fn invalid(path: &Path, what: &'static str, reason: impl Into<String>) -> TlsError {
    TlsError::Invalid {
        what,
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Loads every `CERTIFICATE` block of a PEM file (at least one), in file order.
pub fn load_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_bounded(path, what)?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, io::Error>>()
        .map_err(|e| invalid(path, what, format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(path, what, "no CERTIFICATE block found"));
    }
    Ok(certs)
}

/// Loads the first private key (PKCS#8, PKCS#1 RSA or SEC1 EC) of a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    const WHAT: &str = "private key";
    let pem = read_bounded(path, WHAT)?;
    match rustls_pemfile::private_key(&mut pem.as_slice()) {
        Ok(Some(key)) => Ok(key),
        Ok(None) => Err(invalid(
            path,
            WHAT,
            "no PRIVATE KEY block found (PKCS#8, RSA or EC)",
        )),
        Err(e) => Err(invalid(path, WHAT, format!("bad PEM: {e}"))),
    }
}

/// Loads a CA bundle into a root store; every certificate in it must parse as a trust anchor.
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    const WHAT: &str = "CA bundle";
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path, WHAT)? {
        roots
            .add(cert)
            .map_err(|e| invalid(path, WHAT, format!("unusable CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// The operating system's trust store (Debian: `/etc/ssl/certs`); unparsable entries are
/// skipped, but an empty result is an error.
pub fn load_system_roots() -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::debug!(cause = %e, "skipping unreadable system CA certificate");
    }
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(invalid(
            Path::new("(system trust store)"),
            "CA bundle",
            "no usable system CA certificate; give --upstream-ca",
        ));
    }
    Ok(roots)
}
