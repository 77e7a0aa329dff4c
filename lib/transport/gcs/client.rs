//! The GCS client: object_store's `GoogleCloudStorage` and the HTTP client the
//! resumable upload and single-request writes use.

use std::sync::Arc;

use object_store::gcp::{
    GcpCredential, GoogleCloudStorage, GoogleCloudStorageBuilder, GoogleConfigKey,
};
use object_store::prefix::PrefixStore;
use object_store::{
    Attribute, BackoffConfig, ClientOptions, ObjectStore, PutMode, PutOptions, PutPayload,
    PutResult, RetryConfig, StaticCredentialProvider,
};

use super::resumable::Resumable;
use super::store::GcsStore;
use super::{GcsCredentials, GcsSettings};
use crate::base::error::{Error, Result};
use crate::transport::remote::ClientTuning;
use crate::transport::stall::{Stalled, Watch};
use object_store::path::Path as ObjectPath;

/// The GCS client of every operation: object_store's `GoogleCloudStorage`
/// (reads, lists, deletes) and what the resumable upload needs (its credential
/// provider, an HTTP client, the service's URL). Built in this one place.
#[derive(Clone)]
pub(crate) struct GcsClient {
    pub(super) store: GoogleCloudStorage,
    pub(super) settings: GcsSettings,
    pub(super) http: reqwest::Client,
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
        // No read timeout: reqwest's would cut any upload slower than itself;
        // `send` puts a stall watch on each request instead.
        let mut http = reqwest::Client::builder()
            .connect_timeout(tuning.connect_timeout)
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
    pub(super) fn upload_url(&self) -> std::result::Result<reqwest::Url, String> {
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
    pub(super) async fn simple_upload(
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
        let mut request = self.http.post(url).header(
            "content-type",
            format!("multipart/related; boundary={boundary}"),
        );
        if let Some(auth) = self
            .authorization()
            .await
            .map_err(|e| generic(e.to_string()))?
        {
            request = request.header("authorization", auth);
        }
        let len = body.len() as u64;
        let response = self
            .send(request, (reqwest::Body::from(body), len))
            .await
            .map_err(|source| object_store::Error::Generic {
                store: "GCS",
                source,
            })?;
        if !response.status().is_success() {
            return Err(status_error_of(&location, response, self.settings.stall).await);
        }
        let text = tokio::time::timeout(self.settings.stall, response.bytes())
            .await
            .map_err(|_| generic(Stalled(self.settings.stall).to_string()))?
            .map_err(|e| generic(e.to_string()))?;
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
    pub(super) async fn authorization(&self) -> Result<Option<String>> {
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
    pub(super) async fn start_session(
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
        })
        .to_string();
        let mut request = self
            .http
            .post(url)
            .header("content-type", "application/json; charset=UTF-8")
            .header("x-upload-content-type", "application/octet-stream");
        if let Some(total) = total {
            request = request.header("x-upload-content-length", total);
        }
        if let Some(auth) = self.authorization().await? {
            request = request.header("authorization", auth);
        }
        let len = body.len() as u64;
        let response = self
            .send(request, (reqwest::Body::from(body), len))
            .await
            .map_err(|e| transport_error(&location, e))?;
        if !response.status().is_success() {
            return Err(status_error(&location, response, self.settings.stall).await);
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

impl GcsClient {
    /// Sends `request` with `body` and waits for the answer's head, judged by
    /// a stall watch (stall.rs) in place of a read timeout.
    pub(super) async fn send(
        &self,
        request: reqwest::RequestBuilder,
        (body, len): (reqwest::Body, u64),
    ) -> std::result::Result<reqwest::Response, BoxError> {
        let watch = Watch::new(self.settings.stall);
        let sending = request.body(watch.body(body, len)).send();
        match watch.guard(sending).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(e)) => Err(Box::new(e.without_url())),
            Err(stalled) => Err(Box::new(stalled)),
        }
    }
}

pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub(super) fn generic(text: impl Into<String>) -> object_store::Error {
    object_store::Error::Generic {
        store: "GCS",
        source: text.into().into(),
    }
}

pub(super) fn transport_error(location: &str, source: BoxError) -> Error {
    Error::remote(
        format!("upload to {location}"),
        object_store::Error::Generic {
            store: "GCS",
            source,
        },
    )
}

/// A refused request as the typed object_store error its status means, so it
/// is classified as any other (not found 12, denied 77, throttled 15).
pub(super) async fn status_error(
    location: &str,
    response: reqwest::Response,
    stall: std::time::Duration,
) -> Error {
    Error::remote(
        format!("upload to {location}"),
        status_error_of(location, response, stall).await,
    )
}

pub(super) async fn status_error_of(
    location: &str,
    response: reqwest::Response,
    stall: std::time::Duration,
) -> object_store::Error {
    let status = response.status();
    // The client has no read timeout: an error's text is waited for the stall
    // limit at most.
    let text = tokio::time::timeout(stall, response.text())
        .await
        .ok()
        .and_then(|t| t.ok())
        .unwrap_or_default();
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
