//! Google Cloud Storage (`gs://bucket/prefix`) through object_store's
//! `GoogleCloudStorage` client (XML API: objects, ranged reads, lists, deletes,
//! XML multipart uploads).
//!
//! Credentials, first found wins:
//! - `STORAGE_EMULATOR_HOST` (`host:port` or `http://host:port`): an emulator,
//!   addressed as the Google SDKs do, with no credentials (unsigned requests).
//! - `GOOGLE_APPLICATION_CREDENTIALS`: a JSON key file, a service account's
//!   (`"type": "service_account"`) or a user's (`"authorized_user"`).
//! - else the metadata server (GCE, GKE workload identity), found by
//!   object_store at `metadata.google.internal` / `169.254.169.254`, or at
//!   `GCE_METADATA_HOST` when the environment sets it (object_store reads it).
//!
//! `GCS_ENDPOINT` replaces `https://storage.googleapis.com` (a private endpoint
//! or an emulator that wants credentials).

use std::path::PathBuf;

use super::remote::redact_userinfo;
use crate::base::error::{Error, Result};
use crate::base::settings::Inputs;
use object_store::path::Path as ObjectPath;

/// Everything needed to talk to one GCS bucket.
#[derive(Debug, Clone)]
pub struct GcsSettings {
    /// The bucket.
    pub bucket: String,
    /// Optional key prefix from the URL (`gs://bucket/prefix`).
    pub prefix: Option<String>,
    /// The service's base URL; `None` is `https://storage.googleapis.com`.
    pub base_url: Option<String>,
    /// Where the credentials come from.
    pub credentials: GcsCredentials,
    /// Extra trusted CA certificates (PEM), and the file they came from.
    pub ca_bundle: Option<(PathBuf, Vec<u8>)>,
    /// How long a request may make no progress (`STALL_TIMEOUT`).
    pub stall: std::time::Duration,
}

/// The source of the GCS credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GcsCredentials {
    /// `STORAGE_EMULATOR_HOST`: no credentials, requests unsigned.
    Emulator,
    /// `GOOGLE_APPLICATION_CREDENTIALS`: a JSON key file.
    KeyFile(PathBuf),
    /// The metadata server (GCE, GKE workload identity).
    MetadataServer,
}

impl GcsCredentials {
    /// Which source this is, for `doctor` (a key file's path, never its content).
    pub fn source(&self) -> String {
        match self {
            GcsCredentials::Emulator => "none (STORAGE_EMULATOR_HOST)".into(),
            GcsCredentials::KeyFile(path) => format!("key file {}", path.display()),
            GcsCredentials::MetadataServer => "metadata server".into(),
        }
    }
}

/// Parses the text after `gs://`: the bucket and the literal key prefix.
pub(crate) fn parse_url(rest: &str) -> std::result::Result<(String, Option<String>), String> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err("no bucket".into());
    }
    let prefix = prefix.trim_matches('/');
    if let Err(e) = ObjectPath::parse(prefix) {
        return Err(format!("the key prefix cannot be an object key: {e}"));
    }
    Ok((
        bucket.to_string(),
        (!prefix.is_empty()).then(|| prefix.to_string()),
    ))
}

/// An `http(s)://host[:port]` URL from `raw` (`host:port` gets `default_scheme`),
/// refused by name when it has credentials, a path, a query or no host.
fn base_url(raw: &str, var: &str, default_scheme: &str) -> Result<String> {
    let shown = redact_userinfo(raw);
    let bad = |why: &str| Error::Config(format!("{var}={shown:?} is not a valid endpoint: {why}"));
    let raw = raw.trim();
    let with_scheme = if raw.contains("://") {
        raw.to_string()
    } else {
        format!("{default_scheme}://{raw}")
    };
    let url = url::Url::parse(&with_scheme).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme is not http or https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("credentials do not belong in the endpoint"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(bad("give only scheme, host and port"));
    }
    let host = url.host_str().filter(|h| !h.is_empty());
    let host = host.ok_or_else(|| bad("no host"))?;
    Ok(match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    })
}

/// The GCS settings of `gs://bucket/prefix` and the inputs.
pub(crate) fn settings(
    bucket: String,
    prefix: Option<String>,
    inputs: &Inputs,
    ca_bundle: Option<(PathBuf, Vec<u8>)>,
) -> Result<GcsSettings> {
    // GCS bucket names: 3-63 characters (up to 222 dotted), lowercase letters,
    // digits, '-', '_' and '.', starting and ending with a letter or digit.
    let ok = (3..=222).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
        && bucket
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && bucket
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if !ok {
        return Err(Error::Config(format!(
            "STORAGE_URL: {bucket:?} is not a valid GCS bucket name"
        )));
    }
    let emulator = inputs
        .storage_emulator_host
        .as_deref()
        .map(|h| base_url(h, "STORAGE_EMULATOR_HOST", "http"))
        .transpose()?;
    let endpoint = inputs
        .gcs_endpoint
        .as_deref()
        .map(|h| base_url(h, "GCS_ENDPOINT", "https"))
        .transpose()?;
    let credentials = match (&emulator, &inputs.google_application_credentials) {
        (Some(_), _) => GcsCredentials::Emulator,
        (None, Some(file)) => {
            // Read here so a missing or malformed key is a configuration error
            // naming the variable, not a failure of the first request.
            let text = std::fs::read(file).map_err(|e| {
                Error::Config(format!(
                    "GOOGLE_APPLICATION_CREDENTIALS={file:?}: cannot read it: {e}"
                ))
            })?;
            let kind = serde_json::from_slice::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(String::from));
            match kind.as_deref() {
                Some("service_account") | Some("authorized_user") => {}
                Some(other) => {
                    return Err(Error::Config(format!(
                        "GOOGLE_APPLICATION_CREDENTIALS={file:?}: credentials of type {other:?} \
                         are not supported (use a service account key, or unset it for the \
                         metadata server / GKE workload identity)"
                    )));
                }
                None => {
                    return Err(Error::Config(format!(
                        "GOOGLE_APPLICATION_CREDENTIALS={file:?} is not a JSON key file \
                         with a \"type\""
                    )));
                }
            }
            GcsCredentials::KeyFile(PathBuf::from(file))
        }
        (None, None) => GcsCredentials::MetadataServer,
    };
    Ok(GcsSettings {
        bucket,
        prefix,
        base_url: endpoint.or(emulator),
        credentials,
        ca_bundle,
        stall: crate::transport::remote::stall_timeout(inputs)?,
    })
}

mod client;
mod resumable;
mod store;

pub(crate) use client::GcsClient;
pub use resumable::CHUNK_ALIGN;

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(pairs: &[(&str, &str)]) -> Inputs {
        Inputs::from_env_vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn emulator_host_forms_and_credential_sources() {
        let s = |pairs: &[(&str, &str)]| settings("backups".into(), None, &inputs(pairs), None);
        for raw in [
            "127.0.0.1:4443",
            "http://127.0.0.1:4443",
            "http://127.0.0.1:4443/",
        ] {
            let g = s(&[("STORAGE_EMULATOR_HOST", raw)]).unwrap();
            assert_eq!(g.base_url.as_deref(), Some("http://127.0.0.1:4443"));
            assert_eq!(g.credentials, GcsCredentials::Emulator);
        }
        assert_eq!(s(&[]).unwrap().credentials, GcsCredentials::MetadataServer);
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.json");
        let file = key.to_str().unwrap();
        std::fs::write(&key, r#"{"type":"service_account"}"#).unwrap();
        let g = s(&[("GOOGLE_APPLICATION_CREDENTIALS", file)]).unwrap();
        assert_eq!(g.credentials, GcsCredentials::KeyFile(key.clone()));
        std::fs::write(&key, r#"{"type":"external_account"}"#).unwrap();
        let err = s(&[("GOOGLE_APPLICATION_CREDENTIALS", file)]).unwrap_err();
        assert_eq!(err.exit_code(), 78);
        assert!(err.to_string().contains("external_account"), "{err}");
        for (var, value) in [
            ("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json"),
            ("STORAGE_EMULATOR_HOST", "http://u:pw@127.0.0.1:1"),
            ("STORAGE_EMULATOR_HOST", "ftp://127.0.0.1:1"),
            ("GCS_ENDPOINT", "https://gcs.example/path"),
        ] {
            let err = s(&[(var, value)]).unwrap_err();
            assert_eq!(err.exit_code(), 78, "{var}={value}");
            assert!(err.to_string().starts_with(var), "{err}");
            assert!(!err.to_string().contains("pw@"), "{err}");
        }
    }

    #[test]
    fn gs_urls_select_gcs_and_are_described_with_their_prefix() {
        let r = crate::transport::remote::Remote::from_inputs(&inputs(&[
            ("STORAGE_URL", "gs://backups/etcd/prod/"),
            ("STORAGE_EMULATOR_HOST", "127.0.0.1:4443"),
        ]))
        .unwrap();
        assert!(r.keeps_metadata());
        assert_eq!(r.describe("c-1.db.gz"), "gs://backups/etcd/prod/c-1.db.gz");
        let err = crate::transport::remote::Remote::from_inputs(&inputs(&[
            ("STORAGE_URL", "gs://backups/etcd"),
            ("BUCKET_NAME", "other"),
        ]))
        .unwrap_err();
        assert_eq!(err.exit_code(), 78);
    }

    #[test]
    fn urls_and_bucket_names() {
        assert_eq!(
            parse_url("b-1/etcd/prod/").unwrap(),
            ("b-1".to_string(), Some("etcd/prod".to_string()))
        );
        assert_eq!(parse_url("b-1").unwrap(), ("b-1".to_string(), None));
        assert!(parse_url("/x").is_err());
        assert!(parse_url("b/a//c").is_err());
        for bad in ["ab", "Bucket", "-bucket", "bucket-", "bu cket"] {
            let err = settings(bad.into(), None, &inputs(&[]), None).unwrap_err();
            assert_eq!(err.exit_code(), 78, "{bad}");
        }
    }
}
