//! The signed request every S3 call of [`Target`] goes through: headers for
//! the object's metadata, SSE and checksums, the signature (object_store's
//! [`AwsAuthorizer`]), the streamed body, and the retries around it.

use std::time::Duration;

use object_store::aws::AwsAuthorizer;
use object_store::client::HttpRequestBody;
use reqwest::Method;

use super::{CARRIED_CHECKSUM, Failure, Target, UNSIGNED, usable};
use crate::base::error::{Error, Result};
use crate::transport::s3_options::{ChecksumMode, checksum_sha256};
use crate::transport::stall::{Stalled, Watch};

impl Target {
    pub(super) fn remote_error(&self, what: &str, e: Failure) -> Error {
        Error::remote(format!("{what} {}", self.location), e.error)
    }

    /// Runs `attempt` until it succeeds, fails for good, or retries run out
    /// (backoff from 100 ms, doubling, as object_store's).
    pub(super) async fn retrying<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T, Failure>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
    {
        let mut tries = 0;
        loop {
            match attempt().await {
                Err(e) if e.retryable && tries < self.max_retries => {
                    let pause = Duration::from_millis(100 << tries.min(7));
                    tracing::warn!(
                        request = what,
                        object = %self.location,
                        attempt = tries + 1,
                        error = %e.error,
                        retry_in_ms = pause.as_millis() as u64,
                        "the request failed; sending it again"
                    );
                    tokio::time::sleep(pause).await;
                    tries += 1;
                }
                done => return done,
            }
        }
    }

    /// One signed request; the answer's body on success.
    pub(super) async fn call(
        &self,
        method: Method,
        query: &str,
        meta_sha256: Option<&str>,
        (body, len, payload): (reqwest::Body, u64, &str),
    ) -> Result<String, Failure> {
        let patient = patient(&method, query);
        let response = self
            .send(method, query, (meta_sha256, None), (body, len, payload))
            .await?;
        if patient {
            return response.text().await.map_err(Failure::transport);
        }
        tokio::time::timeout(self.stall, response.text())
            .await
            .map_err(|_| Failure::stalled(Stalled(self.stall)))?
            .map_err(Failure::transport)
    }

    /// Like [`Target::call`], returning the answer's ETag.
    pub(super) async fn call_with_etag(
        &self,
        method: Method,
        query: &str,
        sha256: Option<&str>,
        (body, len, payload): (reqwest::Body, u64, &str),
    ) -> Result<String, Failure> {
        let response = self
            .send(method, query, (None, sha256), (body, len, payload))
            .await?;
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let _ = tokio::time::timeout(self.stall, response.bytes()).await;
        etag.ok_or_else(|| Failure {
            retryable: false,
            error: object_store::Error::Generic {
                store: "S3",
                source: "the part upload was answered without an ETag".into(),
            },
        })
    }

    /// One signed request. `meta_sha256` (the object's digest, hex) goes with a
    /// request that creates the object; `part_sha256` (base64) is a part's
    /// `x-amz-checksum-sha256`.
    async fn send(
        &self,
        method: Method,
        query: &str,
        (meta_sha256, part_sha256): (Option<&str>, Option<&str>),
        (body, len, payload): (reqwest::Body, u64, &str),
    ) -> Result<reqwest::Response, Failure> {
        let mut url = self.url.clone();
        url.set_query((!query.is_empty()).then_some(query));
        let mut head = http::Request::builder()
            .method(method.clone())
            .uri(url.as_str());
        // Requests that create the object carry its metadata.
        if let Some(sum) = meta_sha256 {
            head = head.header("x-amz-meta-sha256", sum);
            if let Some(cluster) = &self.cluster {
                head = head.header("x-amz-meta-snapjob-cluster", cluster);
            }
            for (name, value) in &self.metadata {
                head = head.header(format!("x-amz-meta-{name}"), value.as_str());
            }
        }
        let completing = patient(&method, query);
        let creating = (method == Method::PUT && query.is_empty()) || completing;
        if self.create_only && creating {
            head = head.header("if-none-match", "*");
        }
        // Server-side encryption and checksums (s3_options.rs): the single PUT
        // carries what CreateMultipartUpload would (its body's digest is the
        // object's); parts and Complete carry SSE-C's key, parts their checksum.
        let uploading_part = method == Method::PUT && query.starts_with("partNumber=");
        let extra = if method == Method::PUT && query.is_empty() {
            let mut h = self.options.create_headers(false);
            if let Some(sum) = meta_sha256
                .filter(|_| self.options.checksum == ChecksumMode::Sha256)
                .and_then(checksum_sha256)
            {
                h.push(("x-amz-checksum-sha256", sum));
            }
            h
        } else if uploading_part || completing {
            let mut h = self.options.part_headers();
            if let Some(sum) = part_sha256 {
                h.push(("x-amz-checksum-sha256", sum.to_string()));
            }
            h
        } else {
            Vec::new()
        };
        let carried_checksum = extra.iter().any(|(n, _)| n.starts_with("x-amz-checksum-"));
        for (name, value) in extra {
            head = head.header(name, value);
        }
        // The headers are signed on a request without its body: the body's
        // digest (or UNSIGNED-PAYLOAD) is given, and the body streams from disk
        // on the request that is sent.
        let mut signed = head
            .body(HttpRequestBody::empty())
            .map_err(|e| Failure::local(format!("cannot build the request: {e}")))?;
        let credential = self
            .store
            .credentials()
            .get_credential()
            .await
            .map_err(|error| Failure {
                // The provider retried already.
                retryable: false,
                error,
            })?;
        usable(&credential)?;
        let digest = match payload {
            UNSIGNED => None,
            hex_digest => Some(hex::decode(hex_digest).map_err(|e| {
                Failure::local(format!("the payload digest is not hexadecimal: {e}"))
            })?),
        };
        AwsAuthorizer::new(&credential, "s3", &self.region)
            .with_sign_payload(digest.is_some())
            .try_authorize(&mut signed, digest.as_deref())
            .map_err(|error| Failure {
                retryable: false,
                error,
            })?;
        // Complete is bounded by the deadline only; every other request by a
        // stall watch on its body and answer (stall.rs), not by the client's
        // read timeout, which would cut any upload slower than itself.
        let watch = Watch::new(self.stall);
        let body = if completing {
            body
        } else {
            watch.body(body, len)
        };
        let mut request = self
            .patient
            .request(method, url)
            .header(reqwest::header::CONTENT_LENGTH, len);
        for (name, value) in signed.headers() {
            request = request.header(name, value);
        }
        let sending = request.body(body).send();
        let sent = if completing {
            sending.await
        } else {
            watch.guard(sending).await.map_err(Failure::stalled)?
        };
        let response = sent.map_err(Failure::transport)?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        // A redirect or refusal may name the bucket's region only in a header.
        let region = response
            .headers()
            .get("x-amz-bucket-region")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut text = tokio::time::timeout(self.stall, response.text())
            .await
            .ok()
            .and_then(|t| t.ok())
            .unwrap_or_default();
        if let Some(r) = region.filter(|_| !text.contains("<Region>")) {
            text.push_str(&format!("<Region>{r}</Region>"));
        }
        let mut failure = Failure::from_response(status, &text, &self.location);
        let digest_code = ["BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"]
            .iter()
            .any(|c| text.contains(c));
        if carried_checksum && matches!(status.as_u16(), 400 | 501) && !digest_code {
            // A server without flexible checksums may refuse the header itself.
            failure.error = object_store::Error::Generic {
                store: "S3",
                source: format!("{} ({CARRIED_CHECKSUM})", failure.error).into(),
            };
            failure.retryable = false;
        }
        Err(failure)
    }
}

/// CompleteMultipartUpload: answered only once the server has put the parts
/// together (S3 keeps the connection alive with whitespace meanwhile), so
/// bounded by the deadline alone.
fn patient(method: &Method, query: &str) -> bool {
    *method == Method::POST && query.starts_with("uploadId=")
}
