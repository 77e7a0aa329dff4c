//! Where objects live: an S3-compatible bucket or a local directory, and the
//! object_store client for it.
//!
//! [`Remote::from_inputs`] validates everything that can be checked without the
//! network (endpoint form, credentials present, CA bundle readable and non-empty);
//! [`Remote::open`] builds the client, resolving the bucket's region on AWS when
//! none is given.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::base::cancel::{Deadline, Shutdown};
use crate::base::error::{Error, Result};
use crate::base::settings::{Inputs, Secret};
use object_store::path::Path as ObjectPath;

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

/// Everything needed to talk to one S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// The bucket.
    pub bucket: String,
    /// Optional key prefix from `STORAGE_URL` (`s3://bucket/prefix`).
    pub prefix: Option<String>,
    /// The endpoint; `None` is AWS S3.
    pub endpoint: Option<String>,
    /// Region, when known before contacting the service.
    pub region: Option<String>,
    /// Where the credentials come from.
    pub credentials: Credentials,
    /// Extra trusted CA certificates (PEM), and the file they came from.
    pub ca_bundle: Option<(PathBuf, Vec<u8>)>,
    /// Sign request bodies' SHA-256 (`SIGNED_PAYLOAD=true`); by default bodies
    /// are sent as `UNSIGNED-PAYLOAD` (README, "Payload signing").
    pub sign_payload: bool,
}

/// The source of the S3 credentials. Either way object_store's credential
/// provider hands them out, per request: temporary ones are renewed before they
/// expire, also in the middle of a long upload.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// `ACCESS_KEY_ID`/`SECRET_ACCESS_KEY` (or the `AWS_*` names), with
    /// `AWS_SESSION_TOKEN` for temporary ones.
    Static {
        /// Access key id.
        access_key_id: Secret,
        /// Secret access key.
        secret_access_key: Secret,
        /// Session token for temporary credentials.
        session_token: Option<Secret>,
    },
    /// No static keys: object_store's own provider for these settings (web
    /// identity, container credentials or instance metadata). None of the
    /// values is a secret (a token is read from its file by the provider).
    Provider {
        /// What the provider is, for the log.
        source: String,
        /// object_store's settings for it.
        config: Vec<(AmazonS3ConfigKey, String)>,
    },
}

/// A parsed endpoint: `scheme://host[:port]`, or AWS itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// AWS S3's public endpoint (ENDPOINT unset, empty, `s3.amazonaws.com` or
    /// `s3.<region>.amazonaws.com`), addressed virtual-hosted.
    Aws,
    /// Any other S3-compatible service, addressed path-style.
    Custom(String),
}

/// Parses `ENDPOINT` in the forms the controller allows: `host`, `host:port`, or a URL
/// with scheme. `insecure` (INSECURE=true) selects `http` when no scheme is given.
pub fn parse_endpoint(raw: Option<&str>, insecure: bool, var: &str) -> Result<Endpoint> {
    let raw = match raw.map(str::trim) {
        None | Some("") => return Ok(Endpoint::Aws),
        Some(r) => r,
    };
    let shown = redact_userinfo(raw);
    let bad = |why: &str| Error::Config(format!("{var}={shown:?} is not a valid endpoint: {why}"));
    let with_scheme = if raw.contains("://") {
        raw.to_string()
    } else {
        format!("{}://{raw}", if insecure { "http" } else { "https" })
    };
    let url = url::Url::parse(&with_scheme).map_err(|e| bad(&e.to_string()))?;
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(bad(&format!("scheme {other:?} is not http or https"))),
    }
    if insecure && url.scheme() == "https" {
        return Err(Error::Config(format!(
            "INSECURE=true asks for plain HTTP but {var}={shown:?} says https; remove one"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "credentials do not belong in the endpoint; use ACCESS_KEY_ID/SECRET_ACCESS_KEY",
        ));
    }
    if url.path() != "/" && !url.path().is_empty() {
        return Err(bad("it has a path; give only scheme, host and port"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("it has a query or fragment"));
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("no host"))?;
    if url.port() == Some(0) {
        return Err(bad("port 0"));
    }
    // Only the public endpoint is left to the client; any other host under
    // amazonaws.com (a VPC interface endpoint, FIPS, dual-stack) is used as given.
    let public = host == "s3.amazonaws.com"
        || host
            .strip_prefix("s3.")
            .and_then(|h| h.strip_suffix(".amazonaws.com"))
            .is_some_and(is_aws_region);
    if public {
        return Ok(Endpoint::Aws);
    }
    let mut out = format!("{}://{}", url.scheme(), host);
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    Ok(Endpoint::Custom(out))
}

/// The region an endpoint under amazonaws.com names (`s3.eu-west-1.amazonaws.com`,
/// `s3-fips.dualstack.us-east-1.amazonaws.com`,
/// `bucket.vpce-….s3.us-east-1.vpce.amazonaws.com`, `s3-eu-west-1.amazonaws.com`),
/// the signing region when none is given. `raw` is an endpoint `parse_endpoint` gave.
fn aws_region_in(raw: &str) -> Option<String> {
    let with_scheme = if raw.contains("://") {
        raw.to_string()
    } else {
        format!("https://{raw}")
    };
    let url = url::Url::parse(&with_scheme).ok()?;
    let rest = url.host_str()?.strip_suffix(".amazonaws.com")?;
    let rest = rest.strip_suffix(".vpce").unwrap_or(rest);
    let last = rest.rsplit('.').next()?;
    let region = last.strip_prefix("s3-").unwrap_or(last);
    is_aws_region(region).then(|| region.to_string())
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`: two letters, words, a number.
fn is_aws_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok()
}

fn access_key_var(inputs: &Inputs) -> &'static str {
    if inputs.access_key_id.is_some() {
        "ACCESS_KEY_ID"
    } else {
        "AWS_ACCESS_KEY_ID"
    }
}

/// The credentials the settings name: static keys when either is given (then
/// both must be), else object_store's provider for web identity
/// (`AWS_WEB_IDENTITY_TOKEN_FILE` with `AWS_ROLE_ARN`), container credentials
/// (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`, or `..._FULL_URI` with
/// `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`) or instance metadata
/// (`AWS_METADATA_ENDPOINT`). With none of these it is a configuration error
/// naming `ACCESS_KEY_ID`, as when no other source existed.
fn credentials(inputs: &Inputs) -> Result<Credentials> {
    let access_key_id = inputs
        .access_key_id
        .clone()
        .or_else(|| inputs.aws_access_key_id.clone());
    let secret_access_key = inputs
        .secret_access_key
        .clone()
        .or_else(|| inputs.aws_secret_access_key.clone());
    if access_key_id.is_some() || secret_access_key.is_some() {
        let access_key_id = access_key_id.ok_or_else(|| {
            Error::Config("ACCESS_KEY_ID is not set (nor AWS_ACCESS_KEY_ID)".into())
        })?;
        let secret_access_key = secret_access_key.ok_or_else(|| {
            Error::Config("SECRET_ACCESS_KEY is not set (nor AWS_SECRET_ACCESS_KEY)".into())
        })?;
        header_safe(access_key_id.expose(), access_key_var(inputs), true)?;
        header_safe(
            secret_access_key.expose(),
            if inputs.secret_access_key.is_some() {
                "SECRET_ACCESS_KEY"
            } else {
                "AWS_SECRET_ACCESS_KEY"
            },
            true,
        )?;
        if let Some(token) = &inputs.aws_session_token {
            header_safe(token.expose(), "AWS_SESSION_TOKEN", true)?;
        }
        return Ok(Credentials::Static {
            access_key_id,
            secret_access_key,
            session_token: inputs.aws_session_token.clone(),
        });
    }
    use AmazonS3ConfigKey as Key;
    let missing = |var: &str, with: &str| {
        Error::Config(format!(
            "{var} is not set but {with} is; give both (or ACCESS_KEY_ID/SECRET_ACCESS_KEY)"
        ))
    };
    let (source, mut config) = match (
        &inputs.aws_web_identity_token_file,
        &inputs.aws_role_arn,
        &inputs.aws_container_credentials_relative_uri,
        &inputs.aws_container_credentials_full_uri,
        &inputs.aws_metadata_endpoint,
    ) {
        (Some(file), Some(role), ..) => {
            // The provider reads the token at every renewal; an unreadable file
            // is a mistake of the Job's spec, found here rather than mid-upload.
            std::fs::metadata(file).map_err(|e| {
                Error::Config(format!(
                    "AWS_WEB_IDENTITY_TOKEN_FILE={file:?}: cannot read it: {e}"
                ))
            })?;
            let mut config = vec![
                (Key::WebIdentityTokenFile, file.clone()),
                (Key::RoleArn, role.clone()),
            ];
            if let Some(name) = &inputs.aws_role_session_name {
                config.push((Key::RoleSessionName, name.clone()));
            }
            if let Some(sts) = &inputs.aws_endpoint_url_sts {
                // object_store asks STS over HTTPS only.
                let url = url::Url::parse(sts).ok().filter(|u| u.scheme() == "https");
                if url.is_none() {
                    let shown = redact_userinfo(sts);
                    return Err(Error::Config(format!(
                        "AWS_ENDPOINT_URL_STS={shown:?} is not an https:// URL"
                    )));
                }
                config.push((Key::StsEndpoint, sts.clone()));
            }
            (format!("web identity (role {role})"), config)
        }
        (Some(_), None, ..) => return Err(missing("AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")),
        (None, Some(_), ..) => return Err(missing("AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN")),
        (None, None, Some(uri), ..) => (
            "container credentials (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI)".to_string(),
            vec![(Key::ContainerCredentialsRelativeUri, uri.clone())],
        ),
        (None, None, None, Some(uri), _) => {
            let file = inputs
                .aws_container_authorization_token_file
                .as_ref()
                .ok_or_else(|| {
                    missing(
                        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                    )
                })?;
            (
                "EKS Pod Identity (AWS_CONTAINER_CREDENTIALS_FULL_URI)".to_string(),
                vec![
                    (Key::ContainerCredentialsFullUri, uri.clone()),
                    (Key::ContainerAuthorizationTokenFile, file.clone()),
                ],
            )
        }
        (None, None, None, None, Some(endpoint)) => (
            format!("instance metadata ({endpoint})"),
            vec![(Key::MetadataEndpoint, endpoint.clone())],
        ),
        (None, None, None, None, None) => {
            return Err(Error::Config(
                "ACCESS_KEY_ID is not set (nor AWS_ACCESS_KEY_ID, nor another credential \
                 source: AWS_WEB_IDENTITY_TOKEN_FILE, AWS_CONTAINER_CREDENTIALS_*, \
                 AWS_METADATA_ENDPOINT)"
                    .into(),
            ));
        }
    };
    config.retain(|(_, v)| !v.is_empty());
    Ok(Credentials::Provider { source, config })
}

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
        Ok(Remote::S3(S3Settings {
            bucket,
            prefix,
            endpoint,
            region,
            credentials,
            ca_bundle: load_ca_bundle(inputs.ca_bundle.as_deref())?,
            sign_payload: parse_bool(inputs.signed_payload.as_deref(), "SIGNED_PAYLOAD")?,
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
        let tuning = ClientTuning::for_deadline(deadline.remaining());
        let client = deadline
            .run(shutdown, "connecting", self.open(&tuning))
            .await?;
        let path = ObjectPath::parse(key).map_err(|e| Error::Config(format!("object key: {e}")))?;
        Ok((client, path))
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

/// HTTP behaviour of the client, derived from the operation's deadline.
#[derive(Debug, Clone)]
pub struct ClientTuning {
    /// Total time object_store may spend retrying one request.
    pub retry_timeout: Duration,
    /// Retries per request.
    pub max_retries: usize,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Longest silence while reading a response (a stalled connection).
    pub read_timeout: Duration,
}

impl ClientTuning {
    /// Retries bounded by the operation's own deadline (object_store's default of
    /// three minutes would outlive a 120 s Job).
    pub fn for_deadline(deadline: Duration) -> Self {
        ClientTuning {
            retry_timeout: deadline.mul_f32(0.8),
            max_retries: 6,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(30),
        }
    }
}

/// The bucket's region: the configured one, `us-east-1` for a custom endpoint,
/// else asked of AWS.
async fn region_of(s: &S3Settings, options: &ClientOptions) -> Result<String> {
    Ok(match (&s.region, &s.endpoint) {
        (Some(r), _) => r.clone(),
        (None, Some(_)) => "us-east-1".to_string(),
        (None, None) => object_store::aws::resolve_bucket_region(&s.bucket, options)
            .await
            .map_err(|e| Error::remote(format!("finding the region of bucket {}", s.bucket), e))?,
    })
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
        let tuning = ClientTuning::for_deadline(deadline.remaining());
        let s3 = deadline
            .run(shutdown, "connecting", S3Client::build(s, &tuning))
            .await?;
        let path = ObjectPath::parse(key).map_err(|e| Error::Config(format!("object key: {e}")))?;
        let target = crate::transport::put::Target::new(s, &s3, key, &tuning)?;
        Ok((s3.object_store(s)?, path, Some(target)))
    }
}

fn client_options(s: &S3Settings, tuning: &ClientTuning) -> Result<ClientOptions> {
    let mut options = ClientOptions::new()
        .with_connect_timeout(tuning.connect_timeout)
        .with_read_timeout(tuning.read_timeout)
        // The whole-request timeout would cut large parts and downloads; the read
        // timeout catches stalls and the operation deadline bounds the rest.
        .with_timeout_disabled()
        .with_allow_http(
            s.endpoint
                .as_deref()
                .is_some_and(|e| e.starts_with("http://")),
        );
    if let Some((path, pem)) = &s.ca_bundle {
        for cert in object_store::Certificate::from_pem_bundle(pem)
            .map_err(|e| Error::Config(format!("CA bundle {}: {e}", path.display())))?
        {
            options = options.with_root_certificate(cert);
        }
    }
    Ok(options)
}

/// The S3 client of every operation: object_store's `AmazonS3` (reads, lists,
/// deletes, multipart control calls) and the credential provider and region the
/// streaming uploads (put.rs) sign with. Built in this one place, so both talk to
/// the same endpoint with the same credentials.
#[derive(Clone)]
pub(crate) struct S3Client {
    pub(crate) store: AmazonS3,
    pub(crate) region: String,
}

impl S3Client {
    /// Resolves the region (asking AWS only when neither given nor implied by a
    /// custom endpoint) and builds the client.
    pub(crate) async fn build(s: &S3Settings, tuning: &ClientTuning) -> Result<S3Client> {
        let options = client_options(s, tuning)?;
        let region = region_of(s, &options).await?;
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: tuning.max_retries,
            retry_timeout: tuning.retry_timeout,
        };
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&s.bucket)
            .with_region(&region)
            .with_retry(retry)
            .with_client_options(options)
            .with_unsigned_payload(!s.sign_payload)
            // Plain DELETE, as s3cmd does: bulk DeleteObjects is missing on some services.
            .with_disable_bulk_delete(true)
            // Virtual-hosted on AWS, except for dotted names the wildcard certificate misses.
            .with_virtual_hosted_style_request(s.endpoint.is_none() && !s.bucket.contains('.'));
        let source = match &s.credentials {
            Credentials::Static {
                access_key_id,
                secret_access_key,
                session_token,
            } => {
                builder = builder
                    .with_access_key_id(access_key_id.expose())
                    .with_secret_access_key(secret_access_key.expose());
                if let Some(token) = session_token {
                    builder = builder.with_token(token.expose());
                }
                if session_token.is_some() {
                    "static keys with a session token".to_string()
                } else {
                    "static keys".to_string()
                }
            }
            Credentials::Provider { source, config } => {
                for (key, value) in config {
                    builder = builder.with_config(*key, value);
                }
                source.clone()
            }
        };
        if let Some(endpoint) = &s.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        let store = builder.build().map_err(|e| {
            // The HTTP client cannot be built without any trusted root (an image
            // without CA certificates): say so rather than "builder error".
            let hint = if e.to_string().contains("builder error") {
                " (no system CA certificates? the image needs /etc/ssl/certs, or give CA_BUNDLE)"
            } else {
                ""
            };
            Error::Config(format!(
                "invalid S3 settings for bucket {}: {e}{hint}",
                s.bucket
            ))
        })?;
        // Which source, never a secret.
        tracing::info!(credentials = %source, region = %region, "S3 credentials");
        Ok(S3Client { store, region })
    }

    /// The client as an [`ObjectStore`] under the STORAGE_URL prefix.
    pub(crate) fn object_store(&self, s: &S3Settings) -> Result<Arc<dyn ObjectStore>> {
        Ok(match &s.prefix {
            // `parse`, not `from`: the prefix's bytes as the streaming upload sends them.
            Some(p) => Arc::new(PrefixStore::new(
                self.store.clone(),
                ObjectPath::parse(p)
                    .map_err(|e| Error::Config(format!("STORAGE_URL prefix: {e}")))?,
            )),
            None => Arc::new(self.store.clone()),
        })
    }
}

async fn open_s3(s: &S3Settings, tuning: &ClientTuning) -> Result<Arc<dyn ObjectStore>> {
    S3Client::build(s, tuning).await?.object_store(s)
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
                },
                ca_bundle: None,
                sign_payload: false,
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
fn check_certificates(pem: &[u8]) -> std::result::Result<(), String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn custom(s: &str) -> Endpoint {
        Endpoint::Custom(s.to_string())
    }

    #[test]
    fn endpoint_forms() {
        let p = |raw, insecure| parse_endpoint(Some(raw), insecure, "ENDPOINT").unwrap();
        assert_eq!(p("minio.example", false), custom("https://minio.example"));
        assert_eq!(
            p("minio.example:9000", false),
            custom("https://minio.example:9000")
        );
        assert_eq!(
            p("minio.example:9000", true),
            custom("http://minio.example:9000")
        );
        assert_eq!(
            p("http://127.0.0.1:9000", true),
            custom("http://127.0.0.1:9000")
        );
        assert_eq!(
            p("http://127.0.0.1:9000", false),
            custom("http://127.0.0.1:9000")
        );
        assert_eq!(
            p("https://minio.example:9000/", false),
            custom("https://minio.example:9000")
        );
        assert_eq!(p("s3.amazonaws.com", false), Endpoint::Aws);
        assert_eq!(
            p("https://s3.eu-west-1.amazonaws.com", false),
            Endpoint::Aws
        );
        assert_eq!(
            parse_endpoint(None, false, "ENDPOINT").unwrap(),
            Endpoint::Aws
        );
        assert_eq!(
            parse_endpoint(Some(" "), true, "ENDPOINT").unwrap(),
            Endpoint::Aws
        );
    }

    /// Hosts under amazonaws.com other than the public S3 endpoint are kept: VPC
    /// interface endpoints, FIPS and dual-stack endpoints, for both the object_store
    /// client (path-style on the given endpoint) and the streaming upload's URL;
    /// the region, when not given, is the one the host names.
    #[tokio::test]
    async fn amazonaws_endpoints_other_than_the_public_one_keep_their_host() {
        for (host, region) in [
            (
                "bucket.vpce-0a1b2c3d-4e5f.s3.us-east-1.vpce.amazonaws.com",
                "us-east-1",
            ),
            ("s3-fips.us-east-2.amazonaws.com", "us-east-2"),
            (
                "s3-fips.dualstack.us-gov-west-1.amazonaws.com",
                "us-gov-west-1",
            ),
            ("s3.dualstack.eu-west-1.amazonaws.com", "eu-west-1"),
        ] {
            let url = format!("https://{host}");
            assert_eq!(
                parse_endpoint(Some(host), false, "ENDPOINT").unwrap(),
                custom(&url)
            );
            let r = Remote::from_inputs(&inputs(&[
                ("BUCKET_NAME", "backups"),
                ("ACCESS_KEY_ID", "a"),
                ("SECRET_ACCESS_KEY", "b"),
                ("ENDPOINT", host),
            ]))
            .unwrap();
            let Remote::S3(s) = r else { panic!("not s3") };
            assert_eq!(s.endpoint.as_deref(), Some(url.as_str()), "{host}");
            assert_eq!(s.region.as_deref(), Some(region), "{host}");
            let tuning = ClientTuning::for_deadline(Duration::from_secs(60));
            // The region is known: building the client asks no one.
            let client = S3Client::build(&s, &tuning).await.unwrap();
            assert_eq!(client.region, region);
            let target =
                crate::transport::put::Target::new(&s, &client, "c-1.db.gz", &tuning).unwrap();
            assert_eq!(
                target.url().as_str(),
                format!("{url}/backups/c-1.db.gz"),
                "{host}"
            );
        }
        // A REGION given wins over the host's.
        let r = Remote::from_inputs(&inputs(&[
            ("BUCKET_NAME", "backups"),
            ("ACCESS_KEY_ID", "a"),
            ("SECRET_ACCESS_KEY", "b"),
            ("ENDPOINT", "s3-fips.us-east-2.amazonaws.com"),
            ("REGION", "us-east-1"),
        ]))
        .unwrap();
        let Remote::S3(s) = r else { panic!("not s3") };
        assert_eq!(s.region.as_deref(), Some("us-east-1"));
    }

    #[test]
    fn bad_endpoints_name_the_variable() {
        for raw in [
            "http://minio:9000/bucket",
            "minio:notaport",
            "minio:70000",
            "ftp://minio",
            "http://user:pw@minio",
            "http://minio?x=1",
        ] {
            let err = parse_endpoint(Some(raw), false, "ENDPOINT").unwrap_err();
            assert_eq!(err.exit_code(), 78, "{raw}");
            assert!(err.to_string().starts_with("ENDPOINT="), "{err}");
            assert!(!err.to_string().contains("pw@"), "{err}");
        }
        let conflict = parse_endpoint(Some("https://minio"), true, "ENDPOINT").unwrap_err();
        assert!(conflict.to_string().contains("INSECURE"), "{conflict}");
    }

    #[test]
    fn booleans() {
        assert!(parse_bool(Some("true"), "INSECURE").unwrap());
        assert!(parse_bool(Some("TRUE"), "INSECURE").unwrap());
        assert!(parse_bool(Some("1"), "INSECURE").unwrap());
        assert!(!parse_bool(Some("false"), "INSECURE").unwrap());
        assert!(!parse_bool(None, "INSECURE").unwrap());
        let err = parse_bool(Some("maybe"), "INSECURE").unwrap_err();
        assert_eq!(err.exit_code(), 78);
        assert!(err.to_string().contains("INSECURE"));
    }

    fn inputs(pairs: &[(&str, &str)]) -> Inputs {
        Inputs::from_env_vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn s3_settings_with_fallbacks() {
        let r = Remote::from_inputs(&inputs(&[
            ("BUCKET_NAME", "backups"),
            ("AWS_ACCESS_KEY_ID", "AKIAFALLBACK"),
            ("AWS_SECRET_ACCESS_KEY", "secretsecretsecret"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
            ("AWS_REGION", "eu-central-1"),
        ]))
        .unwrap();
        let Remote::S3(s) = r else { panic!("not s3") };
        let Credentials::Static { access_key_id, .. } = &s.credentials else {
            panic!("not static")
        };
        assert_eq!(access_key_id.expose(), "AKIAFALLBACK");
        assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(s.region.as_deref(), Some("eu-central-1"));
    }

    #[test]
    fn primary_names_win_over_aws_names() {
        let r = Remote::from_inputs(&inputs(&[
            ("BUCKET_NAME", "backups"),
            ("ACCESS_KEY_ID", "PRIMARY"),
            ("AWS_ACCESS_KEY_ID", "FALLBACK"),
            ("SECRET_ACCESS_KEY", "secretsecretsecret"),
            ("ENDPOINT", "minio:9000"),
            ("AWS_ENDPOINT_URL", "http://other:1"),
            ("INSECURE", "true"),
        ]))
        .unwrap();
        let Remote::S3(s) = r else { panic!("not s3") };
        let Credentials::Static { access_key_id, .. } = &s.credentials else {
            panic!("not static")
        };
        assert_eq!(access_key_id.expose(), "PRIMARY");
        assert_eq!(s.endpoint.as_deref(), Some("http://minio:9000"));
    }

    #[test]
    fn missing_settings_name_the_variable() {
        let cases: [(&[(&str, &str)], &str); 4] = [
            (&[], "BUCKET_NAME"),
            (&[("BUCKET_NAME", "backups")], "ACCESS_KEY_ID"),
            (
                &[("BUCKET_NAME", "backups"), ("ACCESS_KEY_ID", "a")],
                "SECRET_ACCESS_KEY",
            ),
            (&[("BUCKET_NAME", "Bad_Bucket!")], "BUCKET_NAME"),
        ];
        for (pairs, var) in cases {
            let err = Remote::from_inputs(&inputs(pairs)).unwrap_err();
            assert_eq!(err.exit_code(), 78);
            assert!(err.to_string().contains(var), "{err} should name {var}");
        }
    }

    #[test]
    fn without_static_keys_object_stores_provider_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "eyJ-web-identity").unwrap();
        let file = token.to_str().unwrap();
        let r = Remote::from_inputs(&inputs(&[
            ("BUCKET_NAME", "backups"),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", file),
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/backup"),
            ("AWS_ENDPOINT_URL_STS", "https://127.0.0.1:8443"),
        ]))
        .unwrap();
        let Remote::S3(s) = r else { panic!("not s3") };
        let Credentials::Provider { source, config } = &s.credentials else {
            panic!("not the provider")
        };
        assert!(source.contains("web identity"), "{source}");
        assert!(config.contains(&(AmazonS3ConfigKey::WebIdentityTokenFile, file.to_string())));
        assert!(config.contains(&(
            AmazonS3ConfigKey::StsEndpoint,
            "https://127.0.0.1:8443".to_string()
        )));
        // Half a source, an unreadable token file or a plain-HTTP STS is 78, named.
        let missing = dir.path().join("missing");
        let cases: [(&[(&str, &str)], &str); 4] = [
            (&[("AWS_WEB_IDENTITY_TOKEN_FILE", file)], "AWS_ROLE_ARN"),
            (&[("AWS_ROLE_ARN", "arn:x")], "AWS_WEB_IDENTITY_TOKEN_FILE"),
            (
                &[
                    ("AWS_WEB_IDENTITY_TOKEN_FILE", missing.to_str().unwrap()),
                    ("AWS_ROLE_ARN", "arn:x"),
                ],
                "AWS_WEB_IDENTITY_TOKEN_FILE",
            ),
            (
                &[
                    ("AWS_WEB_IDENTITY_TOKEN_FILE", file),
                    ("AWS_ROLE_ARN", "arn:x"),
                    ("AWS_ENDPOINT_URL_STS", "http://sts.example"),
                ],
                "AWS_ENDPOINT_URL_STS",
            ),
        ];
        for (pairs, var) in cases {
            let mut all = vec![("BUCKET_NAME", "backups")];
            all.extend_from_slice(pairs);
            let err = Remote::from_inputs(&inputs(&all)).unwrap_err();
            assert_eq!(err.exit_code(), 78, "{var}");
            assert!(err.to_string().starts_with(var), "{err} should name {var}");
        }
        // Static keys win over any provider setting.
        let r = Remote::from_inputs(&inputs(&[
            ("BUCKET_NAME", "backups"),
            ("ACCESS_KEY_ID", "AKIAEXAMPLE"),
            ("SECRET_ACCESS_KEY", "secretsecretsecret"),
            ("AWS_ROLE_ARN", "arn:x"),
        ]))
        .unwrap();
        let Remote::S3(s) = r else { panic!("not s3") };
        assert!(matches!(s.credentials, Credentials::Static { .. }));
    }

    #[test]
    fn header_values_with_newlines_or_spaces_are_refused_by_name() {
        for (var, value) in [
            ("ACCESS_KEY_ID", "AKIAEXAMPLE\n"),
            ("SECRET_ACCESS_KEY", "secret secret"),
            ("AWS_SESSION_TOKEN", "token\n"),
            ("REGION", "eu-west-1\n"),
            ("AWS_DEFAULT_REGION", " eu-west-1"),
        ] {
            let base = [
                ("BUCKET_NAME", "backups"),
                ("ACCESS_KEY_ID", "AKIAEXAMPLE"),
                ("SECRET_ACCESS_KEY", "secretsecretsecret"),
            ];
            let pairs: Vec<_> = base
                .into_iter()
                .filter(|(k, _)| *k != var)
                .chain([(var, value)])
                .collect();
            let err = Remote::from_inputs(&inputs(&pairs)).unwrap_err();
            assert_eq!(err.exit_code(), 78, "{var}");
            let text = err.to_string();
            assert!(text.starts_with(var), "{text} should name {var}");
            if var != "REGION" && var != "AWS_DEFAULT_REGION" {
                assert!(!text.contains(value.trim()), "{text} shows the secret");
            }
        }
        let err = Remote::from_inputs(&inputs(&[
            ("BUCKET_NAME", "backups"),
            ("ACCESS_KEY_ID", "AKIA\n"),
            ("SECRET_ACCESS_KEY", "secretsecretsecret"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("newline"), "{err}");
    }

    #[test]
    fn storage_urls() {
        let local = Remote::from_inputs(&inputs(&[("STORAGE_URL", "file:///tmp/snaps")])).unwrap();
        assert!(
            matches!(local, Remote::Local { ref root } if root == &PathBuf::from("/tmp/snaps"))
        );
        let s3 = Remote::from_inputs(&inputs(&[
            ("STORAGE_URL", "s3://backups/etcd/prod"),
            ("ACCESS_KEY_ID", "a"),
            ("SECRET_ACCESS_KEY", "b"),
        ]))
        .unwrap();
        assert_eq!(s3.describe("c-x.db.gz"), "s3://backups/etcd/prod/c-x.db.gz");
        for bad in [
            "gopher://x",
            "file://relative/path",
            "s3:///nobucket",
            "s3:nobucket/x",
            "s3://backups/a//b",
            "s3://backups/a/../b",
            "s3://backups/./b",
            "s3://backups/a\tb",
        ] {
            let err = Remote::from_inputs(&inputs(&[("STORAGE_URL", bad)])).unwrap_err();
            assert_eq!(err.exit_code(), 78, "{bad}");
            assert!(err.to_string().contains("STORAGE_URL"), "{err}");
        }
        // The prefix is taken literally: what follows the bucket, not URL-decoded.
        let odd = "~etcd %41 # | * ? [ ] { } ^ \\ \" < > `";
        let s3 = Remote::from_inputs(&inputs(&[
            ("STORAGE_URL", &format!("s3://backups/{odd}/")),
            ("ACCESS_KEY_ID", "a"),
            ("SECRET_ACCESS_KEY", "b"),
        ]))
        .unwrap();
        let Remote::S3(s) = s3 else { panic!("not s3") };
        assert_eq!(s.prefix.as_deref(), Some(odd));
    }

    #[test]
    fn ca_bundle_rules() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificates here\n").unwrap();
        let err = load_ca_bundle(Some(empty.to_str().unwrap())).unwrap_err();
        assert_eq!(err.exit_code(), 78);
        assert!(
            err.to_string().contains("holds no PEM certificate"),
            "{err}"
        );
        // A certificate whose PEM armour is fine but whose body is not a certificate.
        let corrupt = dir.path().join("corrupt.pem");
        std::fs::write(
            &corrupt,
            "-----BEGIN CERTIFICATE-----\nTUlJQm9EQ0NBVWFnQXdJQkFnSVVj\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = load_ca_bundle(Some(corrupt.to_str().unwrap())).unwrap_err();
        assert_eq!(err.exit_code(), 78);
        assert!(err.to_string().contains("cannot be used"), "{err}");
        let missing = dir.path().join("missing.pem");
        let err = load_ca_bundle(Some(missing.to_str().unwrap())).unwrap_err();
        assert!(err.to_string().contains("CA_BUNDLE"), "{err}");
    }
}
