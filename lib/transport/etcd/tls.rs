//! TLS to etcd: the CA and client certificate from `ETCD_*` files, and whether
//! etcd asked for a client certificate we do not have (its refusal then names the
//! variables to set).

use std::path::PathBuf;
use std::sync::Arc;

use tokio_rustls::rustls;

use super::EtcdSource;
use crate::base::error::{Error, Result};

/// Said of a failed TLS connection when the server asked for a client certificate.
pub(super) const NO_CERTIFICATE: &str = " (etcd asked for a client certificate; none is configured: ETCD_CLIENT_CERT_FILE, ETCD_CLIENT_KEY_FILE)";

/// Stands in for a client certificate when none is configured: offers none, and
/// records that the server asked for one.
#[derive(Debug, Default)]
pub(super) struct CertificateAsked(pub(super) std::sync::atomic::AtomicBool);

impl rustls::client::ResolvesClientCert for CertificateAsked {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        None
    }

    fn has_certs(&self) -> bool {
        false
    }
}

/// The TLS client settings: the CA file as the only roots, the client
/// certificate when given, HTTP/2 by ALPN. `None` when no CA file is given.
pub(super) fn tls_config(src: &EtcdSource) -> Result<Option<Arc<rustls::ClientConfig>>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let Some(ca) = &src.ca_file else {
        return Ok(None);
    };
    let bad = |flag: &str, p: &PathBuf, e: &dyn std::fmt::Display| {
        Error::Config(format!("{flag} {}: {e}", p.display()))
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| bad("ETCD_CA_FILE", ca, &e))? {
        roots
            .add(cert.map_err(|e| bad("ETCD_CA_FILE", ca, &e))?)
            .map_err(|e| bad("ETCD_CA_FILE", ca, &e))?;
    }
    if roots.is_empty() {
        return Err(bad("ETCD_CA_FILE", ca, &"holds no certificate"));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Other(format!("TLS setup: {e}")))?
        .with_root_certificates(roots);
    let mut config = match (&src.cert_file, &src.key_file) {
        (Some(c), Some(k)) => {
            let certs = CertificateDer::pem_file_iter(c)
                .map_err(|e| bad("ETCD_CLIENT_CERT_FILE", c, &e))?
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| bad("ETCD_CLIENT_CERT_FILE", c, &e))?;
            let key =
                PrivateKeyDer::from_pem_file(k).map_err(|e| bad("ETCD_CLIENT_KEY_FILE", k, &e))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| bad("ETCD_CLIENT_CERT_FILE", c, &e))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(Error::Config(
                "give both ETCD_CLIENT_CERT_FILE and ETCD_CLIENT_KEY_FILE, or neither".into(),
            ));
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Some(Arc::new(config)))
}
