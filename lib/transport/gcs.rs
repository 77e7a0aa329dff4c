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
use std::sync::Arc;

use bytes::Bytes;
use futures::FutureExt;
use futures::stream::BoxStream;
use object_store::gcp::{
    GcpCredential, GoogleCloudStorage, GoogleCloudStorageBuilder, GoogleConfigKey,
};
use object_store::prefix::PrefixStore;
use object_store::{
    Attribute, BackoffConfig, ClientOptions, CopyOptions, GetOptions, GetResult, ListResult,
    MultipartUpload, ObjectMeta, ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload,
    PutResult, RetryConfig, StaticCredentialProvider,
};

use super::remote::{ClientTuning, redact_userinfo};
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
    })
}

/// The GCS client of every operation: object_store's `GoogleCloudStorage`
/// (reads, lists, deletes) and what the resumable upload needs (its credential
/// provider, an HTTP client, the service's URL). Built in this one place.
#[derive(Clone)]
pub(crate) struct GcsClient {
    store: GoogleCloudStorage,
    settings: GcsSettings,
    http: reqwest::Client,
}

/// The default service URL.
const GCS_URL: &str = "https://storage.googleapis.com";

impl GcsClient {
    /// Builds the client; contacts no one.
    pub(crate) fn build(s: &GcsSettings, tuning: &ClientTuning) -> Result<GcsClient> {
        let mut options = ClientOptions::new()
            .with_connect_timeout(tuning.connect_timeout)
            .with_read_timeout(tuning.read_timeout)
            .with_timeout_disabled()
            .with_allow_http(
                s.base_url
                    .as_deref()
                    .is_some_and(|u| u.starts_with("http://")),
            );
        let mut http = reqwest::Client::builder()
            .connect_timeout(tuning.connect_timeout)
            .read_timeout(tuning.read_timeout)
            .http1_only()
            .no_proxy();
        if let Some((path, pem)) = &s.ca_bundle {
            for cert in object_store::Certificate::from_pem_bundle(pem)
                .map_err(|e| Error::Config(format!("CA bundle {}: {e}", path.display())))?
            {
                options = options.with_root_certificate(cert);
            }
            for cert in reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| Error::Config(format!("CA bundle {}: {e}", path.display())))?
            {
                http = http.add_root_certificate(cert);
            }
        }
        let http = http.build().map_err(|e| {
            Error::Config(format!(
                "cannot build the HTTP client (no system CA certificates? give CA_BUNDLE): {e}"
            ))
        })?;
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: tuning.max_retries,
            retry_timeout: tuning.retry_timeout,
        };
        let mut builder = GoogleCloudStorageBuilder::new()
            .with_bucket_name(&s.bucket)
            .with_retry(retry)
            .with_client_options(options);
        if let Some(url) = &s.base_url {
            builder = builder.with_config(GoogleConfigKey::BaseUrl, url);
        }
        let source = match &s.credentials {
            GcsCredentials::Emulator => {
                builder = builder.with_skip_signature(true).with_credentials(Arc::new(
                    StaticCredentialProvider::new(GcpCredential {
                        bearer: String::new(),
                    }),
                ));
                "none (STORAGE_EMULATOR_HOST)".to_string()
            }
            GcsCredentials::KeyFile(path) => {
                builder = builder.with_application_credentials(path.display().to_string());
                format!("key file {}", path.display())
            }
            // object_store reads gcloud's well-known file under $HOME first (a
            // Job has none), then asks the metadata server.
            GcsCredentials::MetadataServer => "metadata server".to_string(),
        };
        let store = builder.build().map_err(|e| {
            Error::Config(format!("invalid GCS settings for bucket {}: {e}", s.bucket))
        })?;
        tracing::info!(credentials = %source, "GCS credentials");
        Ok(GcsClient {
            store,
            settings: s.clone(),
            http,
        })
    }

    /// The client as an [`ObjectStore`] under the URL's prefix.
    pub(crate) fn object_store(&self) -> Result<Arc<dyn ObjectStore>> {
        let store = GcsStore(self.clone());
        Ok(match &self.settings.prefix {
            Some(p) => Arc::new(PrefixStore::new(
                store,
                ObjectPath::parse(p)
                    .map_err(|e| Error::Config(format!("STORAGE_URL prefix: {e}")))?,
            )),
            None => Arc::new(store),
        })
    }

    /// The JSON API's upload URL of the bucket.
    fn upload_url(&self) -> std::result::Result<reqwest::Url, String> {
        let base = self.settings.base_url.as_deref().unwrap_or(GCS_URL);
        let mut url = reqwest::Url::parse(&format!("{base}/upload/storage/v1/b/"))
            .map_err(|e| format!("GCS upload URL: {e}"))?;
        url.path_segments_mut()
            .map_err(|_| "GCS upload URL cannot have a path".to_string())?
            .pop_if_empty()
            .push(&self.settings.bucket)
            .push("o");
        Ok(url)
    }

    /// One small object in one request (JSON API multipart upload: metadata and
    /// bytes), as the SDKs write them; `name` is the full object name.
    async fn simple_upload(
        &self,
        name: &str,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let fail = |e: String| generic(e);
        let mut url = self.upload_url().map_err(fail)?;
        url.query_pairs_mut()
            .append_pair("uploadType", "multipart")
            .append_pair("name", name);
        match &opts.mode {
            PutMode::Overwrite => {}
            PutMode::Create => {
                url.query_pairs_mut().append_pair("ifGenerationMatch", "0");
            }
            PutMode::Update(v) => {
                let generation = v.version.as_deref().ok_or_else(|| {
                    generic("a conditional update needs the object's generation".to_string())
                })?;
                url.query_pairs_mut()
                    .append_pair("ifGenerationMatch", generation);
            }
        }
        let mut meta = serde_json::Map::new();
        let mut content_type = "application/octet-stream".to_string();
        for (key, value) in opts.attributes.iter() {
            match key {
                Attribute::Metadata(k) => {
                    meta.insert(k.to_string(), serde_json::Value::from(value.as_ref()));
                }
                Attribute::ContentType => content_type = value.to_string(),
                _ => {}
            }
        }
        let head =
            serde_json::json!({ "name": name, "contentType": content_type, "metadata": meta });
        let boundary = "snapjob-7c1f0b9e2d4a";
        let mut body = format!(
            "--{boundary}\r\ncontent-type: application/json; charset=UTF-8\r\n\r\n{head}\r\n\
             --{boundary}\r\ncontent-type: {content_type}\r\n\r\n"
        )
        .into_bytes();
        for chunk in payload.iter() {
            body.extend_from_slice(chunk);
        }
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let location = format!("gs://{}/{name}", self.settings.bucket);
        let mut request = self
            .http
            .post(url)
            .header(
                "content-type",
                format!("multipart/related; boundary={boundary}"),
            )
            .body(body);
        if let Some(auth) = self
            .authorization()
            .await
            .map_err(|e| generic(e.to_string()))?
        {
            request = request.header("authorization", auth);
        }
        let response = request
            .send()
            .await
            .map_err(|e| object_store::Error::Generic {
                store: "GCS",
                source: Box::new(e.without_url()),
            })?;
        if !response.status().is_success() {
            return Err(status_error_of(&location, response).await);
        }
        let text = response.bytes().await.map_err(|e| generic(e.to_string()))?;
        let answer: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| generic(e.to_string()))?;
        let field = |k: &str| answer.get(k).and_then(|v| v.as_str()).map(str::to_string);
        Ok(PutResult {
            e_tag: field("etag"),
            version: field("generation"),
            extensions: Default::default(),
        })
    }

    /// The `Authorization` value of the next request; none for an emulator.
    async fn authorization(&self) -> Result<Option<String>> {
        if self.settings.credentials == GcsCredentials::Emulator {
            return Ok(None);
        }
        let credential = self
            .store
            .credentials()
            .get_credential()
            .await
            .map_err(|e| Error::remote("getting GCS credentials", e))?;
        Ok(Some(format!("Bearer {}", credential.bearer)))
    }

    /// Opens a resumable upload (JSON API) of `total` bytes to `key` (under the
    /// prefix) with user metadata `metadata`; `create_only` adds
    /// `ifGenerationMatch=0`. Nothing is visible at the key until the last byte.
    pub(crate) async fn start_resumable(
        &self,
        key: &str,
        total: u64,
        metadata: &[(&str, &str)],
        create_only: bool,
    ) -> Result<Resumable> {
        let name = match &self.settings.prefix {
            Some(p) => format!("{p}/{key}"),
            None => key.to_string(),
        };
        self.start_session(&name, Some(total), metadata, create_only)
            .await
    }

    /// [`GcsClient::start_resumable`] for the full object `name`; `total` when known.
    async fn start_session(
        &self,
        name: &str,
        total: Option<u64>,
        metadata: &[(&str, &str)],
        create_only: bool,
    ) -> Result<Resumable> {
        let location = format!("gs://{}/{name}", self.settings.bucket);
        let base = self.settings.base_url.as_deref().unwrap_or(GCS_URL);
        let mut url = reqwest::Url::parse(&format!("{base}/upload/storage/v1/b/"))
            .map_err(|e| Error::Config(format!("GCS upload URL: {e}")))?;
        url.path_segments_mut()
            .map_err(|_| Error::Config("GCS upload URL cannot have a path".into()))?
            .pop_if_empty()
            .push(&self.settings.bucket)
            .push("o");
        url.query_pairs_mut()
            .append_pair("uploadType", "resumable")
            .append_pair("name", name);
        if create_only {
            url.query_pairs_mut().append_pair("ifGenerationMatch", "0");
        }
        let meta: serde_json::Map<String, serde_json::Value> = metadata
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
            .collect();
        let body = serde_json::json!({
            "name": name,
            "contentType": "application/octet-stream",
            "metadata": meta,
        });
        let mut request = self
            .http
            .post(url)
            .header("content-type", "application/json; charset=UTF-8")
            .header("x-upload-content-type", "application/octet-stream")
            .body(body.to_string());
        if let Some(total) = total {
            request = request.header("x-upload-content-length", total);
        }
        if let Some(auth) = self.authorization().await? {
            request = request.header("authorization", auth);
        }
        let response = request
            .send()
            .await
            .map_err(|e| transport_error(&location, e))?;
        if !response.status().is_success() {
            return Err(status_error(&location, response).await);
        }
        let session = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| {
                Error::remote(
                    format!("upload to {location}"),
                    generic("the resumable upload was started without a session URL"),
                )
            })?;
        Ok(Resumable {
            client: self.clone(),
            session,
            total,
            location,
        })
    }
}

/// One resumable upload session: chunks sent in order, the object created by
/// the last one; cancelled (the session deleted) on any failure before that.
pub(crate) struct Resumable {
    client: GcsClient,
    session: String,
    total: Option<u64>,
    location: String,
}

/// The chunk granularity of resumable uploads: every chunk but the last is a
/// multiple of 256 KiB.
pub const CHUNK_ALIGN: u64 = 256 << 10;

impl Resumable {
    /// Sends `bytes` at `offset`; `last` completes the object.
    pub(crate) async fn put_chunk(
        &self,
        offset: u64,
        bytes: bytes::Bytes,
        last: bool,
    ) -> Result<()> {
        let len = bytes.len() as u64;
        let end = offset + len;
        let total = self.total.unwrap_or(end);
        if end > total || (last && end != total) || (len == 0) {
            return Err(Error::Other(format!(
                "chunk {offset}+{len} does not fit an upload of {total} bytes"
            )));
        }
        let range = if last {
            format!("bytes {offset}-{}/{total}", end - 1)
        } else {
            format!("bytes {offset}-{}/*", end - 1)
        };
        let mut request = self
            .client
            .http
            .put(&self.session)
            .header("content-range", range)
            .header("content-length", len)
            .body(bytes);
        if let Some(auth) = self.client.authorization().await? {
            request = request.header("authorization", auth);
        }
        let response = request
            .send()
            .await
            .map_err(|e| transport_error(&self.location, e))?;
        let status = response.status().as_u16();
        match (status, last) {
            (308, false) | (200 | 201, true) => Ok(()),
            _ => Err(status_error(&self.location, response).await),
        }
    }

    /// Cancels the session; returns what may be left when it could not.
    pub(crate) async fn cancel(self) -> Option<String> {
        self.cancel_ref().await
    }

    async fn cancel_ref(&self) -> Option<String> {
        let mut request = self.client.http.delete(&self.session);
        if let Ok(Some(auth)) = self.client.authorization().await {
            request = request.header("authorization", auth);
        }
        match request.send().await {
            // 499 is GCS's answer to a cancelled session.
            Ok(r) if r.status().is_success() || r.status().as_u16() == 499 => None,
            Ok(r) if r.status().as_u16() == 404 || r.status().as_u16() == 410 => None,
            Ok(r) => Some(format!(
                "an incomplete resumable upload to {} (cancel answered {}; GCS drops it after a week)",
                self.location,
                r.status()
            )),
            Err(_) => Some(format!(
                "an incomplete resumable upload to {} (GCS drops it after a week)",
                self.location
            )),
        }
    }
}

type Sent =
    futures::future::Shared<futures::future::BoxFuture<'static, std::result::Result<(), String>>>;

/// A multipart upload on one resumable session.
struct Chunked {
    session: Arc<Resumable>,
    /// Bytes not sent yet: under 256 KiB, or the last 256 KiB held back.
    held: Vec<u8>,
    /// Where the next chunk starts.
    offset: u64,
    /// The request of the previous part; the next waits for it.
    previous: Sent,
}

impl std::fmt::Debug for Chunked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Chunked({})", self.session.location)
    }
}

#[async_trait::async_trait]
impl MultipartUpload for Chunked {
    fn put_part(&mut self, data: PutPayload) -> object_store::UploadPart {
        for chunk in data.iter() {
            self.held.extend_from_slice(chunk);
        }
        // Send whole 256 KiB units, keeping at least one byte for `complete`.
        let units = (self.held.len().saturating_sub(1) as u64 / CHUNK_ALIGN) * CHUNK_ALIGN;
        let rest = self.held.split_off(units as usize);
        let send = Bytes::from(std::mem::replace(&mut self.held, rest));
        let (offset, previous, session) =
            (self.offset, self.previous.clone(), self.session.clone());
        self.offset += send.len() as u64;
        let sent: Sent = async move {
            previous.await?;
            if send.is_empty() {
                return Ok(());
            }
            session
                .put_chunk(offset, send, false)
                .await
                .map_err(|e| e.to_string())
        }
        .boxed()
        .shared();
        self.previous = sent.clone();
        async move { sent.await.map_err(generic) }.boxed()
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        self.previous.clone().await.map_err(generic)?;
        let last = Bytes::from(std::mem::take(&mut self.held));
        if last.is_empty() {
            return Err(generic(
                "an empty object cannot complete a resumable upload".to_string(),
            ));
        }
        self.session
            .put_chunk(self.offset, last, true)
            .await
            .map_err(|e| generic(e.to_string()))?;
        Ok(PutResult {
            e_tag: None,
            version: None,
            extensions: Default::default(),
        })
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        // Not after the chunk in flight: it may be the one that stalls.
        match self.session.cancel_ref().await {
            None => Ok(()),
            Some(left) => Err(generic(left)),
        }
    }
}

fn generic(text: impl Into<String>) -> object_store::Error {
    object_store::Error::Generic {
        store: "GCS",
        source: text.into().into(),
    }
}

fn transport_error(location: &str, e: reqwest::Error) -> Error {
    Error::remote(
        format!("upload to {location}"),
        object_store::Error::Generic {
            store: "GCS",
            source: Box::new(e.without_url()),
        },
    )
}

/// A refused request as the typed object_store error its status means, so it
/// is classified as any other (not found 12, denied 77, throttled 15).
async fn status_error(location: &str, response: reqwest::Response) -> Error {
    Error::remote(
        format!("upload to {location}"),
        status_error_of(location, response).await,
    )
}

async fn status_error_of(location: &str, response: reqwest::Response) -> object_store::Error {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let text: String = text.chars().take(300).collect();
    let source: Box<dyn std::error::Error + Send + Sync> =
        format!("status code: {status}: {text}").into();
    let path = location.to_string();
    match status.as_u16() {
        404 => object_store::Error::NotFound { path, source },
        412 => object_store::Error::Precondition { path, source },
        401 => object_store::Error::Unauthenticated { path, source },
        403 => object_store::Error::PermissionDenied { path, source },
        _ => object_store::Error::Generic {
            store: "GCS",
            source,
        },
    }
}

/// object_store's GCS client, but for single-request writes, which go through
/// the JSON API (as the Google SDKs send them) rather than the XML API's PUT:
/// the same service, and what GCS emulators implement. Everything else is
/// object_store's.
#[derive(Clone)]
struct GcsStore(GcsClient);

impl std::fmt::Debug for GcsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GcsStore({})", self.0.settings.bucket)
    }
}

impl std::fmt::Display for GcsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GoogleCloudStorage({})", self.0.settings.bucket)
    }
}

#[async_trait::async_trait]
impl ObjectStore for GcsStore {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let result = self.0.simple_upload(location.as_ref(), payload, opts).await;
        match result {
            Err(object_store::Error::Precondition { path, source }) => {
                Err(object_store::Error::AlreadyExists { path, source })
            }
            other => other,
        }
    }

    /// A resumable session (JSON API), not the XML multipart upload: parts are
    /// cut into 256 KiB-aligned chunks sent strictly in order, each part's
    /// request after the previous one's; the tail is held back for `complete`,
    /// so nothing is visible before it.
    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let meta: Vec<(String, String)> = opts
            .attributes
            .iter()
            .filter_map(|(k, v)| match k {
                Attribute::Metadata(k) => Some((k.to_string(), v.to_string())),
                _ => None,
            })
            .collect();
        let meta: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let session = self
            .0
            .start_session(location.as_ref(), None, &meta, false)
            .await
            .map_err(|e| generic(e.to_string()))?;
        Ok(Box::new(Chunked {
            session: Arc::new(session),
            held: Vec::new(),
            offset: 0,
            previous: futures::future::ready(Ok(())).boxed().shared(),
        }))
    }

    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.0.store.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        self.0.store.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.0.store.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> object_store::Result<ListResult> {
        self.0.store.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.0.store.copy_opts(from, to, options).await
    }
}

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
