//! The S3 client of every operation and the settings it is built from.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use super::ClientTuning;
use super::checks::redact_userinfo;
use super::credentials::Credentials;
use crate::base::error::{Error, Result};
use crate::base::settings::Secret;

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
    /// Server-side encryption, checksums and addressing.
    pub options: crate::transport::s3_options::S3Options,
    /// How long a request may make no progress (`STALL_TIMEOUT`).
    pub stall: Duration,
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
pub(super) fn aws_region_in(raw: &str) -> Option<String> {
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
pub(super) fn is_aws_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok()
}

/// The bucket's region: the configured one, `us-east-1` for a custom endpoint,
/// else asked of AWS.
pub(super) async fn region_of(s: &S3Settings, options: &ClientOptions) -> Result<String> {
    Ok(match (&s.region, &s.endpoint) {
        (Some(r), _) => r.clone(),
        (None, Some(_)) => "us-east-1".to_string(),
        (None, None) => object_store::aws::resolve_bucket_region(&s.bucket, options)
            .await
            .map_err(|e| Error::remote(format!("finding the region of bucket {}", s.bucket), e))?,
    })
}

pub(super) fn client_options(s: &S3Settings, tuning: &ClientTuning) -> Result<ClientOptions> {
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
    /// Resolves the region (asking AWS when neither given nor implied by the
    /// endpoint; asking a custom endpoint once, [`S3Client::with_bucket_region`])
    /// and builds the client.
    pub(crate) async fn build(s: &S3Settings, tuning: &ClientTuning) -> Result<S3Client> {
        let options = client_options(s, tuning)?;
        let region = region_of(s, &options).await?;
        let (store, source) = store_for(s, tuning, &region, options.clone(), None)?;
        if s.options.customer_key_var().is_some()
            && s.endpoint
                .as_deref()
                .is_some_and(|e| e.starts_with("http://"))
        {
            tracing::warn!(
                "the SSE-C customer key is sent over plain HTTP (INSECURE=true): anyone on \
                 the path can read it; AWS refuses SSE-C without TLS"
            );
        }
        if let Credentials::Provider { last_resort, .. } = &s.credentials {
            super::fetch::first_credentials(&store, &source, *last_resort).await?;
        }
        let mut client = S3Client { store, region };
        if s.region.is_none() && s.endpoint.is_some() {
            client = client.with_bucket_region(s, tuning, options).await?;
        }
        // Which source, never a secret.
        tracing::info!(credentials = %source, region = %client.region, "S3 credentials");
        Ok(client)
    }

    /// On a custom endpoint with no region given, requests are signed for
    /// `us-east-1` unless the bucket names another: asked once per run
    /// (GetBucketLocation, put/location.rs), the client rebuilt for it with
    /// the same credential provider. A question that fails changes nothing.
    async fn with_bucket_region(
        self,
        s: &S3Settings,
        tuning: &ClientTuning,
        options: ClientOptions,
    ) -> Result<S3Client> {
        let asked = crate::transport::put::Target::new(s, &self, "", tuning)?
            .bucket_region()
            .await;
        match asked {
            Ok(Some(region)) if region != self.region => {
                tracing::info!(bucket = %s.bucket, region = %region,
                    "the bucket names its region (GetBucketLocation); requests are signed for it");
                let provider = self.store.credentials().clone();
                let (store, _) = store_for(s, tuning, &region, options, Some(provider))?;
                Ok(S3Client { store, region })
            }
            Ok(_) => Ok(self),
            Err(why) => {
                tracing::debug!(bucket = %s.bucket, error = %why,
                    "the bucket's region could not be asked (GetBucketLocation); signing for us-east-1");
                Ok(self)
            }
        }
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

/// object_store's client for `region`, and which credential source signs
/// (never a secret): `provider` when given (the same credentials, a second
/// region), else the configured source.
fn store_for(
    s: &S3Settings,
    tuning: &ClientTuning,
    region: &str,
    options: ClientOptions,
    provider: Option<object_store::aws::AwsCredentialProvider>,
) -> Result<(AmazonS3, String)> {
    let retry = RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: tuning.max_retries,
        retry_timeout: tuning.retry_timeout,
    };
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&s.bucket)
        .with_region(region)
        .with_retry(retry)
        .with_client_options(options)
        .with_unsigned_payload(!s.sign_payload)
        // Plain DELETE, as s3cmd does: bulk DeleteObjects is missing on some services.
        .with_disable_bulk_delete(true)
        .with_virtual_hosted_style_request(
            s.options
                .addressing
                .virtual_hosted(s.endpoint.as_deref(), &s.bucket),
        );
    builder = s.options.apply(builder);
    let source = match (&s.credentials, provider) {
        (Credentials::Provider { source, .. }, Some(provider)) => {
            builder = builder.with_credentials(provider);
            source.clone()
        }
        (
            Credentials::Static {
                access_key_id,
                secret_access_key,
                session_token,
            },
            _,
        ) => {
            builder = with_keys(builder, access_key_id, secret_access_key, session_token);
            if session_token.is_some() {
                "static keys with a session token".to_string()
            } else {
                "static keys".to_string()
            }
        }
        (Credentials::Profile(keys), _) => {
            builder = with_keys(
                builder,
                &keys.access_key_id,
                &keys.secret_access_key,
                &keys.session_token,
            );
            keys.source.clone()
        }
        (Credentials::Provider { source, config, .. }, None) => {
            for (key, value) in config {
                builder = builder.with_config(*key, value);
            }
            source.clone()
        }
    };
    if let Some(endpoint) = &s.endpoint {
        builder = builder.with_endpoint(
            if s.options
                .addressing
                .virtual_hosted(Some(endpoint), &s.bucket)
            {
                // object_store takes a virtual-hosted endpoint with the bucket in it.
                crate::transport::s3_options::bucket_url(
                    Some(endpoint),
                    &s.bucket,
                    region,
                    s.options.addressing,
                )?
            } else {
                endpoint.clone()
            },
        );
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
    Ok((store, source))
}

pub(super) async fn open_s3(s: &S3Settings, tuning: &ClientTuning) -> Result<Arc<dyn ObjectStore>> {
    S3Client::build(s, tuning).await?.object_store(s)
}

fn with_keys(
    builder: AmazonS3Builder,
    access_key_id: &Secret,
    secret_access_key: &Secret,
    session_token: &Option<Secret>,
) -> AmazonS3Builder {
    let builder = builder
        .with_access_key_id(access_key_id.expose())
        .with_secret_access_key(secret_access_key.expose());
    match session_token {
        Some(token) => builder.with_token(token.expose()),
        None => builder,
    }
}
