//! Where objects live: an S3-compatible bucket or a local directory, and the
//! object_store client for it.
//!
//! [`Remote::from_inputs`] validates everything that can be checked without the
//! network (endpoint form, credentials present, CA bundle readable and non-empty);
//! [`Remote::open`] builds the client, resolving the bucket's region on AWS when
//! none is given.
//!
//! The S3 client and its settings are in `s3`, where credentials come from in
//! `credentials`, and the checks of single values (booleans, header-safe
//! strings, the CA bundle) in `checks`.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;

use crate::base::cancel::{Deadline, Shutdown};
use crate::base::error::{Error, Result};
use crate::base::settings::Inputs;
use object_store::path::Path as ObjectPath;

mod checks;
mod credentials;
#[cfg(test)]
mod credentials_tests;
mod fetch;
mod profile;
mod s3;
#[cfg(test)]
mod tests;
mod tuning;

pub use checks::parse_bool;
pub(crate) use checks::{header_safe, load_ca_bundle, redact_userinfo};
pub use credentials::Credentials;
use credentials::credentials;
pub(crate) use s3::S3Client;
pub use s3::{Endpoint, S3Settings, parse_endpoint};
use s3::{aws_region_in, open_s3};
pub use tuning::ClientTuning;
pub(crate) use tuning::stall_timeout;

/// Where the Job's CA bundle ConfigMap is mounted (docs/CONTRACT.md).
pub const DEFAULT_CA_BUNDLE: &str = "/etc/ca-bundle/ca-bundle.pem";

/// A validated destination/source of snapshots.
#[derive(Debug, Clone)]
pub enum Remote {
    /// An S3-compatible bucket.
    S3(S3Settings),
    /// An Azure Blob Storage container (`az://`, `azure://`, `azureblob://`,
    /// `https://ACCOUNT.blob.core.windows.net/`).
    Azure(crate::transport::azure::AzureSettings),
    /// A Google Cloud Storage bucket (`gs://bucket/prefix`).
    Gcs(crate::transport::gcs::GcsSettings),
    /// A local directory (`file:///dir`): the embedded default that needs no server.
    Local {
        /// The directory; created on first use.
        root: PathBuf,
    },
}

impl Remote {
    /// Validates the location settings: `STORAGE_URL`, else `BUCKET_NAME` with
    /// `ENDPOINT`/`INSECURE`/`REGION`, credentials and the CA bundle.
    pub fn from_inputs(inputs: &Inputs) -> Result<Remote> {
        let (bucket, prefix) = match inputs.storage_url.as_deref() {
            Some(url) => match parse_storage_url(url)? {
                Remote::Local { root } => return Ok(Remote::Local { root }),
                Remote::S3(s) => (s.bucket, s.prefix),
                Remote::Azure(a) => {
                    return crate::transport::azure::from_inputs(a, inputs).map(Remote::Azure);
                }
                Remote::Gcs(g) => {
                    if inputs.bucket_name.as_ref().is_some_and(|b| *b != g.bucket) {
                        return Err(Error::Config(
                            "BUCKET_NAME and STORAGE_URL name different buckets; set one".into(),
                        ));
                    }
                    let ca = load_ca_bundle(inputs.ca_bundle.as_deref())?;
                    return crate::transport::gcs::settings(g.bucket, g.prefix, inputs, ca)
                        .map(Remote::Gcs);
                }
            },
            None => {
                let bucket = inputs.bucket_name.clone().ok_or_else(|| {
                    Error::Config("BUCKET_NAME is not set (or give STORAGE_URL)".into())
                })?;
                (bucket, None)
            }
        };
        if let (Some(name), Some(_)) = (&inputs.bucket_name, &inputs.storage_url) {
            if *name != bucket {
                return Err(Error::Config(format!(
                    "BUCKET_NAME={name:?} and STORAGE_URL name different buckets; set one"
                )));
            }
        }
        validate_bucket(&bucket)?;
        let insecure = parse_bool(inputs.insecure.as_deref(), "INSECURE")?;
        let (endpoint_var, endpoint_raw) = [
            ("ENDPOINT", &inputs.endpoint),
            ("AWS_ENDPOINT_URL_S3", &inputs.aws_endpoint_url_s3),
            ("AWS_ENDPOINT_URL", &inputs.aws_endpoint_url),
        ]
        .into_iter()
        .find_map(|(var, v)| v.as_deref().map(|v| (var, Some(v))))
        .unwrap_or(("ENDPOINT", None));
        let endpoint = match parse_endpoint(endpoint_raw, insecure, endpoint_var)? {
            Endpoint::Aws => None,
            Endpoint::Custom(url) => Some(url),
        };
        let region = [
            &inputs.region,
            &inputs.aws_region,
            &inputs.aws_default_region,
        ]
        .into_iter()
        .find_map(|r| r.clone())
        // An amazonaws.com host used as given names its region; the public
        // endpoint (None here) still asks AWS for the bucket's region.
        .or_else(|| endpoint.as_deref().and_then(aws_region_in));
        let credentials = credentials(inputs)?;
        for (var, value) in [
            ("REGION", &inputs.region),
            ("AWS_REGION", &inputs.aws_region),
            ("AWS_DEFAULT_REGION", &inputs.aws_default_region),
        ] {
            if let Some(v) = value {
                header_safe(v, var, false)?;
            }
        }
        let options = crate::transport::s3_options::S3Options::from_inputs(inputs)?;
        // A virtual-hosted bucket needs a host name to go in: said now, not at connect.
        crate::transport::s3_options::bucket_url(
            endpoint.as_deref(),
            &bucket,
            "us-east-1",
            options.addressing,
        )?;
        Ok(Remote::S3(S3Settings {
            bucket,
            prefix,
            endpoint,
            region,
            credentials,
            ca_bundle: load_ca_bundle(inputs.ca_bundle.as_deref())?,
            sign_payload: parse_bool(inputs.signed_payload.as_deref(), "SIGNED_PAYLOAD")?,
            options,
            stall: stall_timeout(inputs)?,
        }))
    }

    /// `s3://bucket/key` or `file:///dir/key`, for messages and logs.
    pub fn describe(&self, key: &str) -> String {
        match self {
            Remote::S3(s) => match &s.prefix {
                Some(p) => format!("s3://{}/{p}/{key}", s.bucket),
                None => format!("s3://{}/{key}", s.bucket),
            },
            Remote::Gcs(g) => match &g.prefix {
                Some(p) => format!("gs://{}/{p}/{key}", g.bucket),
                None => format!("gs://{}/{key}", g.bucket),
            },
            Remote::Local { root } => format!("file://{}/{key}", root.display()),
            Remote::Azure(a) => a.describe(key),
        }
    }

    /// Whether the store keeps user metadata (where the SHA-256 is recorded).
    pub fn keeps_metadata(&self) -> bool {
        matches!(self, Remote::S3(_) | Remote::Azure(_) | Remote::Gcs(_))
    }

    /// The metadata a backup carries here ([`backup_attributes`]): on Azure
    /// under names that are C# identifiers, as the service requires.
    ///
    /// [`backup_attributes`]: crate::transport::object::backup_attributes
    pub fn backup_attributes(
        &self,
        sha256: Option<&str>,
        cluster: Option<&str>,
        extra: &[(&'static str, String)],
    ) -> object_store::Attributes {
        let keep = self.keeps_metadata();
        let attrs = crate::transport::object::with_metadata(
            crate::transport::object::backup_attributes(sha256, cluster, keep),
            extra,
            keep,
        );
        match self {
            Remote::Azure(_) => attrs
                .iter()
                .map(|(k, v)| match k {
                    object_store::Attribute::Metadata(name) => (
                        object_store::Attribute::Metadata(name.replace('-', "_").into()),
                        v.clone(),
                    ),
                    other => (other.clone(), v.clone()),
                })
                .collect(),
            _ => attrs,
        }
    }

    /// The preamble of every operation: builds the client within the deadline and
    /// parses the key.
    pub async fn connect(
        &self,
        key: &str,
        deadline: &Deadline,
        shutdown: &Shutdown,
    ) -> Result<(Arc<dyn ObjectStore>, ObjectPath)> {
        let tuning = self.tuning(deadline);
        let client = deadline
            .run(shutdown, "connecting", self.open(&tuning))
            .await?;
        let path = ObjectPath::parse(key).map_err(|e| Error::Config(format!("object key: {e}")))?;
        Ok((client, path))
    }

    /// How the clients behave within `deadline`, with the settings' stall limit.
    pub fn tuning(&self, deadline: &Deadline) -> ClientTuning {
        let stall = match self {
            Remote::S3(s) => s.stall,
            Remote::Azure(a) => a.stall,
            Remote::Gcs(g) => g.stall,
            Remote::Local { .. } => crate::transport::stall::DEFAULT_STALL,
        };
        ClientTuning::for_deadline(deadline.remaining()).with_stall(stall)
    }

    /// Builds the client. Contacts AWS only to find the bucket's region when it
    /// was not given.
    pub async fn open(&self, tuning: &ClientTuning) -> Result<Arc<dyn ObjectStore>> {
        match self {
            Remote::Local { root } => {
                std::fs::create_dir_all(root)
                    .map_err(|e| Error::io(root, "cannot create the storage directory", e))?;
                let fs = LocalFileSystem::new_with_prefix(root)
                    .map_err(|e| Error::remote(format!("opening {}", root.display()), e))?;
                Ok(Arc::new(fs))
            }
            Remote::S3(s) => open_s3(s, tuning).await,
            Remote::Azure(a) => a.open(tuning),
            Remote::Gcs(g) => crate::transport::gcs::GcsClient::build(g, tuning)?.object_store(),
        }
    }
}

/// A HEAD of `path` that brings the object's attributes (user metadata) along,
/// which `ObjectStore::head` does not.
pub(crate) async fn head(
    client: &dyn ObjectStore,
    path: &ObjectPath,
) -> object_store::Result<object_store::GetResult> {
    let opts = object_store::GetOptions {
        head: true,
        ..object_store::GetOptions::default()
    };
    client.get_opts(path, opts).await
}

impl Remote {
    /// Like [`Remote::connect`]; for S3 also the target of streaming uploads to
    /// `key` (put.rs), from the same region lookup.
    pub(crate) async fn connect_put(
        &self,
        key: &str,
        deadline: &Deadline,
        shutdown: &Shutdown,
    ) -> Result<(
        Arc<dyn ObjectStore>,
        ObjectPath,
        Option<crate::transport::put::Target>,
    )> {
        let s = match self {
            Remote::S3(s) => s,
            _ => {
                let (client, path) = self.connect(key, deadline, shutdown).await?;
                return Ok((client, path, None));
            }
        };
        let tuning = self.tuning(deadline);
        let s3 = deadline
            .run(shutdown, "connecting", S3Client::build(s, &tuning))
            .await?;
        let path = ObjectPath::parse(key).map_err(|e| Error::Config(format!("object key: {e}")))?;
        let target = crate::transport::put::Target::new(s, &s3, key, &tuning)?;
        Ok((s3.object_store(s)?, path, Some(target)))
    }
}

fn parse_storage_url(raw: &str) -> Result<Remote> {
    if let Some(azure) = crate::transport::azure::parse_url(raw)? {
        return Ok(Remote::Azure(azure));
    }
    let bad = |why: &str| Error::Config(format!("STORAGE_URL={raw:?} is not valid: {why}"));
    let url = url::Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
    match url.scheme() {
        "file" => {
            let root = url
                .to_file_path()
                .map_err(|_| bad("not an absolute local path"))?;
            Ok(Remote::Local { root })
        }
        "s3" => {
            // The text after the bucket is the key prefix, literally (as in aws and
            // s3cmd): not URL-decoded, `?` and `#` included. It is the same bytes
            // for every request (the streaming upload and object_store's, whose
            // `Path::parse` keeps them), so only what an object_store path cannot
            // hold is refused: empty, `.` or `..` segments and control characters.
            let raw = raw.trim();
            let rest = raw.split_once("://").map_or("", |(_, rest)| rest);
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("no bucket"));
            }
            let prefix = prefix.trim_matches('/');
            if let Err(e) = ObjectPath::parse(prefix) {
                return Err(bad(&format!("the key prefix cannot be an object key: {e}")));
            }
            Ok(Remote::S3(S3Settings {
                bucket: bucket.to_string(),
                prefix: (!prefix.is_empty()).then(|| prefix.to_string()),
                endpoint: None,
                region: None,
                // Replaced by the credentials of the settings (from_inputs).
                credentials: Credentials::Provider {
                    source: String::new(),
                    config: Vec::new(),
                    last_resort: false,
                },
                ca_bundle: None,
                sign_payload: false,
                // Replaced by the options of the settings (from_inputs).
                options: Default::default(),
                stall: crate::transport::stall::DEFAULT_STALL,
            }))
        }
        "gs" => {
            // Literal prefix, as for s3:// (kops' `gs://` stores are the same form).
            let rest = raw.trim().split_once("://").map_or("", |(_, rest)| rest);
            let (bucket, prefix) = crate::transport::gcs::parse_url(rest).map_err(|e| bad(&e))?;
            Ok(Remote::Gcs(crate::transport::gcs::GcsSettings {
                bucket,
                prefix,
                base_url: None,
                // Replaced by the credentials of the settings (from_inputs).
                credentials: crate::transport::gcs::GcsCredentials::MetadataServer,
                ca_bundle: None,
                stall: crate::transport::stall::DEFAULT_STALL,
            }))
        }
        other => Err(bad(&format!(
            "scheme {other:?} is not supported (use s3://, az://, gs:// or file://)"
        ))),
    }
}

fn validate_bucket(bucket: &str) -> Result<()> {
    let ok = (3..=63).contains(&bucket.len())
        && bucket.chars().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.' || c == '_'
        });
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "BUCKET_NAME={bucket:?} is not a valid bucket name (3-63 lowercase letters, digits, '.', '-')"
        )))
    }
}
