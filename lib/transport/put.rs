//! Streaming uploads of a file to S3: one `PutObject`, or a multipart upload
//! (Create, UploadPart, Complete, Abort) whose parts are read from disk as they
//! are sent. Every request is signed by object_store's [`AwsAuthorizer`] with
//! the credentials of the store's own provider (remote.rs, [`S3Client`]);
//! Create and Abort are object_store's [`MultipartStore`] calls.
//!
//! object_store sends every body from memory, so each part in flight would sit
//! in memory. Here a body is read from the file as it goes: a few MiB whatever
//! the size or the part size. One PUT is one request, with no multipart upload a
//! crash could leave behind; on a server that re-reads a multipart object to
//! complete it (s3s-fs, `docs/TEST-SERVERS.md`) it is also the fastest way in.
//!
//! The object's SHA-256 goes in `x-amz-meta-sha256`, computed before the request
//! (S3 takes headers before the body). The payload itself is sent as
//! `UNSIGNED-PAYLOAD` unless `SIGNED_PAYLOAD=true`; since a single PUT's payload
//! hash *is* the object's SHA-256, signing it costs the client nothing, only the
//! server's check of it (README, "Payload signing").
//!
//! The last chunk of the body is held back until the caller's check (snapshot
//! verification, file unchanged) passes. A request that does not deliver all of
//! its `Content-Length` bytes creates no object, so a failed check, a signal or
//! the deadline leaves nothing at the key.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use object_store::aws::AmazonS3;
use object_store::path::Path as ObjectPath;
use reqwest::Method;
use tokio::sync::watch;

use crate::base::error::{Error, Result};
use crate::transport::remote::{ClientTuning, S3Client, S3Settings};
use crate::transport::s3_options::S3Options;

mod body;
mod failure;
mod identity;
mod location;
mod multipart;
mod parts;
mod probe;
mod send;
mod uploads;
pub(crate) use identity::{IdentityFailure, StsEndpoint, sts_endpoint};
pub(crate) use probe::ProbeFailure;
pub(crate) use uploads::Pending;

pub(crate) use body::{body, shared_progress};
use failure::{Failure, usable};

/// How a body is read from the file: bytes per read, and reads queued ahead of
/// the socket; about `(queued + 2) * chunk` bytes are in memory per request.
/// A single PUT reads ahead 6 MiB; each of the parallel parts 1.5 MiB, so 4 in
/// flight hold about as much as one PUT and memory does not depend on the
/// upload's shape (benches/RESULTS.md).
const SINGLE_READS: (usize, usize) = (1 << 20, 4);
const PART_READS: (usize, usize) = (512 << 10, 1);
/// S3's largest single PUT.
pub const MAX_SINGLE_PUT: u64 = 5 << 30;
/// Said of a refused request that carried `x-amz-checksum-sha256`
/// (`base::error` tells the user to unset `CHECKSUM`).
pub(crate) const CARRIED_CHECKSUM: &str = crate::base::error::CARRIED_CHECKSUM;
/// The payload hash of an unsigned body.
const UNSIGNED: &str = "UNSIGNED-PAYLOAD";

/// Where and how to send PUTs: the object's URL, and the client whose credentials sign them.
#[derive(Clone)]
pub(crate) struct Target {
    /// The requests that send no body of ours (the bucket probe, STS): a
    /// silence of the stall limit ends them.
    client: reqwest::Client,
    /// Every signed request (send.rs), with no read timeout: reqwest's would
    /// cut any upload slower than itself. Their bodies and answers are judged
    /// by a stall watch instead (stall.rs), but CompleteMultipartUpload's,
    /// which a server may answer only after re-reading the whole object
    /// (s3s-fs: about 3.4 s per GiB, docs/TEST-SERVERS.md): only the deadline
    /// bounds it.
    patient: reqwest::Client,
    /// How long a request may make no progress (`STALL_TIMEOUT`).
    stall: Duration,
    url: reqwest::Url,
    /// The bucket's URL (ListMultipartUploads, and aborts of other keys: uploads.rs).
    bucket_url: reqwest::Url,
    /// The bucket's URL without the trailing slash, and the STORAGE_URL
    /// prefix: what [`Target::at`] names another key with.
    base: String,
    prefix: Option<String>,
    /// The key under the prefix, as sent.
    key: String,
    /// The object_store client of the same bucket: its credential provider signs
    /// every request, and it makes the multipart control calls.
    store: AmazonS3,
    /// The key under the prefix, as object_store names it.
    object: ObjectPath,
    region: String,
    sign_payload: bool,
    /// Server-side encryption and checksum headers (s3_options.rs).
    options: S3Options,
    max_retries: usize,
    /// Recorded as `x-amz-meta-snapjob-cluster` with the object.
    cluster: Option<String>,
    /// More user metadata recorded with the object: (name after
    /// `x-amz-meta-`, value), e.g. the encryption scheme.
    metadata: Vec<(String, String)>,
    /// Create the object only if the key is free (`If-None-Match: *` on the PUT
    /// and on CompleteMultipartUpload): a backup name another writer took first
    /// is refused (412), never overwritten.
    create_only: bool,
    /// `s3://bucket/key`, for messages.
    location: String,
}

/// What the body waits for before its last chunk: `Ok` to send it, `Err` (a
/// reason) to stop the request.
pub(crate) type Gate = watch::Receiver<Option<std::result::Result<(), String>>>;
/// Run just before the last chunk goes out (after the gate): `Err` stops the request.
pub(crate) type LastCheck = Arc<dyn Fn() -> std::result::Result<(), String> + Send + Sync>;

impl Target {
    /// The object `key` (the STORAGE_URL prefix is added here) in `s3`'s bucket,
    /// reached with `client`.
    pub(crate) fn new(
        s3: &S3Settings,
        client: &S3Client,
        key: &str,
        tuning: &ClientTuning,
    ) -> Result<Target> {
        let region = client.region.as_str();
        // The bucket's URL as the object_store client is set up (remote/s3.rs).
        let base = crate::transport::s3_options::bucket_url(
            s3.endpoint.as_deref(),
            &s3.bucket,
            region,
            s3.options.addressing,
        )?;
        let (full_key, url, object) = locate(&base, s3.prefix.as_deref(), key)?;
        let bucket_url = reqwest::Url::parse(&format!("{base}/"))
            .map_err(|e| Error::Config(format!("bucket URL of key {key:?}: {e}")))?;
        let build = |read_timeout: Option<Duration>| -> Result<reqwest::Client> {
            let mut builder = reqwest::Client::builder()
                .connect_timeout(tuning.connect_timeout)
                // One long body: HTTP/2's flow-control windows would only slow it.
                .http1_only()
                .no_proxy();
            if let Some(limit) = read_timeout {
                builder = builder.read_timeout(limit);
            }
            if let Some((file, pem)) = &s3.ca_bundle {
                for cert in reqwest::Certificate::from_pem_bundle(pem)
                    .map_err(|e| Error::Config(format!("CA bundle {}: {e}", file.display())))?
                {
                    builder = builder.add_root_certificate(cert);
                }
            }
            builder.build().map_err(|e| {
                Error::Config(format!(
                    "cannot build the HTTP client (no system CA certificates? give CA_BUNDLE): {e}"
                ))
            })
        };
        Ok(Target {
            client: build(Some(tuning.read_timeout))?,
            patient: build(None)?,
            stall: tuning.read_timeout,
            url,
            bucket_url,
            base,
            prefix: s3.prefix.clone(),
            key: full_key.clone(),
            store: client.store.clone(),
            object,
            region: region.to_string(),
            sign_payload: s3.sign_payload,
            options: s3.options.clone(),
            max_retries: tuning.max_retries,
            cluster: None,
            metadata: Vec::new(),
            create_only: false,
            location: format!("s3://{}/{full_key}", s3.bucket),
        })
    }

    /// The same bucket, client and settings, for the object `key` (under the
    /// same prefix), with no metadata of the object set yet.
    pub(crate) fn at(&self, key: &str) -> Result<Target> {
        let (full_key, url, object) = locate(&self.base, self.prefix.as_deref(), key)?;
        Ok(Target {
            url,
            location: format!("{}{full_key}", self.bucket_location()),
            key: full_key,
            object,
            cluster: None,
            metadata: Vec::new(),
            create_only: false,
            ..self.clone()
        })
    }

    /// The object's URL, as requested.
    #[cfg(test)]
    pub(crate) fn url(&self) -> &reqwest::Url {
        &self.url
    }

    /// Records `cluster` with the object (config checked it is header-safe).
    pub(crate) fn with_cluster(self, cluster: Option<String>) -> Target {
        Target { cluster, ..self }
    }

    /// Records `metadata` (names after `x-amz-meta-`, header-safe) with the object.
    pub(crate) fn with_metadata(self, metadata: &[(&'static str, String)]) -> Target {
        let metadata = metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        Target { metadata, ..self }
    }

    /// Writes the object only where nothing is at the key yet.
    pub(crate) fn create_only(self) -> Target {
        Target {
            create_only: true,
            ..self
        }
    }

    /// Uploads the first `size` bytes of `file` with `sha256` recorded, in one
    /// PUT whose last chunk waits for `gate` and `last`; retries what a retry can
    /// fix. The caller bounds it in time (dropping it mid-body stores nothing).
    pub(crate) async fn put_file(
        &self,
        file: &Path,
        size: u64,
        sha256: &str,
        (gate, last): (&Gate, &LastCheck),
        progress: Duration,
    ) -> Result<()> {
        let progress = shared_progress(size, progress);
        let refusal = Arc::new(Mutex::new(None));
        let payload = if self.sign_payload { sha256 } else { UNSIGNED };
        let sent = self
            .retrying("the PUT", || {
                let body = body(
                    file.to_path_buf(),
                    (0, size),
                    SINGLE_READS,
                    Some((gate.clone(), last.clone())),
                    refusal.clone(),
                    progress.clone(),
                );
                let call = self.call(Method::PUT, "", Some(sha256), (body, size, payload));
                let refusal = refusal.clone();
                async move {
                    let sent = call.await;
                    match sent {
                        // Our own refusal cut the body: nothing to retry.
                        Err(mut e) if refusal.lock().expect("not poisoned").is_some() => {
                            e.retryable = false;
                            Err(e)
                        }
                        other => other,
                    }
                }
            })
            .await;
        if let Some(reason) = refusal.lock().expect("not poisoned").take() {
            return Err(Error::Data(reason));
        }
        sent.map(|_| ())
            .map_err(|e| Error::remote(format!("upload to {}", self.location), e.error))
    }
}

/// The key under `prefix`, its URL under the bucket's (`base`, no trailing
/// slash), and its object_store path.
fn locate(
    base: &str,
    prefix: Option<&str>,
    key: &str,
) -> Result<(String, reqwest::Url, ObjectPath)> {
    let full_key = match prefix {
        Some(p) => format!("{}/{key}", p.trim_end_matches('/')),
        None => key.to_string(),
    };
    let raw = format!("{base}/{}", uri_encode_path(&full_key));
    let url = reqwest::Url::parse(&raw)
        .map_err(|e| Error::Config(format!("object URL for key {key:?}: {e}")))?;
    if url.host_str().is_none() {
        return Err(Error::Config(format!("object URL {raw} has no host")));
    }
    let object = ObjectPath::parse(&full_key)
        .map_err(|e| Error::Config(format!("object key {full_key:?}: {e}")))?;
    Ok((full_key, url, object))
}

/// A part sent: its ETag, and its `x-amz-checksum-sha256` (base64) when
/// `CHECKSUM=sha256`, both named again by CompleteMultipartUpload.
#[derive(Debug, Clone, Default)]
pub(crate) struct SentPart {
    etag: String,
    sha256: Option<String>,
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The URI encoding of an object key S3 expects: every byte but `A-Za-z0-9-_.~`
/// and `/` as `%XX`. The URL's path is signed as it is sent.
fn uri_encode_path(key: &str) -> String {
    encode(key, true)
}

/// The URI encoding of a query value (`/` encoded too).
fn uri_encode(value: &str) -> String {
    encode(value, false)
}

fn encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_percent_encoded() {
        assert_eq!(uri_encode_path("c-1/b 2+x=~._"), "c-1/b%202%2Bx%3D~._");
        assert_eq!(uri_encode_path("é"), "%C3%A9");
    }
}
