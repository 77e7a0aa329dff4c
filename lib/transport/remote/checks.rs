//! Checks of single setting values: booleans, strings that go into headers,
//! and the CA bundle.

use std::path::PathBuf;

use super::DEFAULT_CA_BUNDLE;
use crate::base::error::{Error, Result};

/// A value that goes into a request header (credentials, region) must be one
/// token of visible ASCII: a trailing newline (the `echo key | base64` mistake
/// when writing a Secret) would make every request invalid. Secrets are never
/// shown, only what is wrong with them.
pub(crate) fn header_safe(value: &str, var: &str, secret: bool) -> Result<()> {
    if value.bytes().all(|b| b.is_ascii_graphic()) {
        return Ok(());
    }
    let what = if value.ends_with('\n') || value.ends_with('\r') {
        "ends with a newline (a Secret written with `echo` instead of `echo -n`?)"
    } else if value.starts_with(char::is_whitespace) || value.ends_with(char::is_whitespace) {
        "has leading or trailing white space"
    } else if value.is_ascii() {
        "contains white space or control characters"
    } else {
        "contains non-ASCII characters"
    };
    let shown = if secret {
        String::new()
    } else {
        format!("={value:?}")
    };
    Err(Error::Config(format!("{var}{shown} {what}; remove them")))
}

/// `scheme://user:pw@host` shown as `scheme://***@host`, so no credential is echoed.
pub(crate) fn redact_userinfo(raw: &str) -> String {
    let start = raw.find("://").map_or(0, |i| i + 3);
    let authority_end = raw[start..].find('/').map_or(raw.len(), |i| start + i);
    match raw[start..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &raw[..start], &raw[start + at..]),
        None => raw.to_string(),
    }
}

/// Parses a boolean setting: true/false, 1/0, yes/no (any case).
pub fn parse_bool(raw: Option<&str>, var: &str) -> Result<bool> {
    match raw.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("false") | Some("0") | Some("no") => Ok(false),
        Some("true") | Some("1") | Some("yes") => Ok(true),
        Some(_) => Err(Error::Config(format!(
            "{var}={:?} is not a boolean (use true or false)",
            raw.unwrap_or_default()
        ))),
    }
}

/// Reads the CA bundle: `CA_BUNDLE` must exist when set; the default path is
/// optional. A file without any certificate is a configuration error.
pub(crate) fn load_ca_bundle(explicit: Option<&str>) -> Result<Option<(PathBuf, Vec<u8>)>> {
    let path = PathBuf::from(explicit.unwrap_or(DEFAULT_CA_BUNDLE));
    let pem = match std::fs::read(&path) {
        Ok(pem) => pem,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
            return Ok(None);
        }
        Err(e) => {
            return Err(Error::Config(format!(
                "CA_BUNDLE {}: cannot read it: {e}",
                path.display()
            )));
        }
    };
    let text = String::from_utf8_lossy(&pem);
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err(Error::Config(format!(
            "CA_BUNDLE {} holds no PEM certificate",
            path.display()
        )));
    }
    object_store::Certificate::from_pem_bundle(&pem)
        .map_err(|e| Error::Config(format!("CA_BUNDLE {}: {e}", path.display())))?;
    // Parse each certificate as the TLS stack will, so a corrupt one fails here
    // with 78, not after retries as an untrusted server (77).
    check_certificates(&pem).map_err(|e| {
        Error::Config(format!(
            "CA_BUNDLE {} holds a certificate that cannot be used: {e}",
            path.display()
        ))
    })?;
    Ok(Some((path, pem)))
}

/// Every certificate of a PEM bundle, parsed as a trust anchor.
pub(super) fn check_certificates(pem: &[u8]) -> std::result::Result<(), String> {
    use tokio_rustls::rustls::RootCertStore;
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    let mut roots = RootCertStore::empty();
    for (n, cert) in CertificateDer::pem_slice_iter(pem).enumerate() {
        let cert = cert.map_err(|e| format!("certificate {}: {e}", n + 1))?;
        roots
            .add(cert)
            .map_err(|e| format!("certificate {}: {e}", n + 1))?;
    }
    Ok(())
}
