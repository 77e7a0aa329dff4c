//! A file's multipart upload on S3: Create (object_store's call, the SHA-256 and
//! the cluster as metadata), the parts read from the file as they are sent,
//! `CONCURRENCY` at a time, Complete only once the caller's check passed, and
//! Abort.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use object_store::multipart::MultipartStore;
use object_store::{Attribute, Attributes, PutMultipartOptions};
use reqwest::Method;
use tokio::task::JoinSet;

use super::body::{SharedProgress, body, hash_range, shared_progress};
use super::{Failure, PART_READS, SentPart, Target, UNSIGNED, uri_encode, xml_escape};
use crate::base::digest::Sha256;
use crate::base::error::{Error, Result};
use crate::transport::s3_options::{ChecksumMode, checksum_sha256};

impl Target {
    /// Starts a multipart upload with `sha256` (and the cluster) recorded as
    /// metadata; returns its id. object_store's call, with its own retries.
    pub(crate) async fn create_multipart(&self, sha256: &str) -> Result<String> {
        let mut attributes = Attributes::new();
        attributes.insert(
            Attribute::Metadata("sha256".into()),
            sha256.to_string().into(),
        );
        if let Some(cluster) = &self.cluster {
            attributes.insert(
                Attribute::Metadata("snapjob-cluster".into()),
                cluster.clone().into(),
            );
        }
        for (name, value) in &self.metadata {
            attributes.insert(
                Attribute::Metadata(name.clone().into()),
                value.clone().into(),
            );
        }
        let opts = PutMultipartOptions {
            attributes,
            ..PutMultipartOptions::default()
        };
        self.store
            .create_multipart_opts(&self.object, opts)
            .await
            .map_err(|e| {
                Error::remote(
                    format!("starting the multipart upload to {}", self.location),
                    e,
                )
            })
    }

    /// Uploads the file in `part_size` parts, `concurrency` at once, each read
    /// from disk as it is sent. Returns the parts' ETags in order. On error the
    /// caller must abort; dropping this cancels the parts in flight.
    pub(crate) async fn send_parts(
        &self,
        upload_id: &str,
        file: &Path,
        (size, part_size): (u64, u64),
        concurrency: usize,
        progress: Duration,
    ) -> Result<Vec<SentPart>> {
        let progress = shared_progress(size, progress);
        let count = size.div_ceil(part_size) as usize;
        let mut etags = vec![SentPart::default(); count];
        let mut in_flight: JoinSet<Result<(usize, SentPart)>> = JoinSet::new();
        let mut next = 0;
        while next < count || !in_flight.is_empty() {
            while next < count && in_flight.len() < concurrency {
                let (target, path, id, progress) = (
                    self.clone(),
                    file.to_path_buf(),
                    upload_id.to_string(),
                    progress.clone(),
                );
                let offset = next as u64 * part_size;
                let len = part_size.min(size - offset);
                let index = next;
                in_flight.spawn(async move {
                    let etag = target
                        .send_part(&id, index + 1, &path, (offset, len), progress)
                        .await?;
                    Ok((index, etag))
                });
                next += 1;
            }
            match in_flight.join_next().await {
                Some(Ok(Ok((index, etag)))) => etags[index] = etag,
                Some(Ok(Err(e))) => return Err(e),
                Some(Err(join)) => {
                    return Err(Error::Other(format!("a part upload failed: {join}")));
                }
                None => {}
            }
        }
        Ok(etags)
    }

    async fn send_part(
        &self,
        upload_id: &str,
        number: usize,
        file: &Path,
        (offset, len): (u64, u64),
        progress: SharedProgress,
    ) -> Result<SentPart> {
        let query = format!("partNumber={number}&uploadId={}", uri_encode(upload_id));
        let no_refusal = Arc::new(Mutex::new(None));
        // The part's own digest: one more pass over it, the price of signing
        // it or of sending its checksum.
        let digest = if self.part_digest_needed() {
            Some(hash_range(file, offset, len)?)
        } else {
            None
        };
        let (payload, sha256) = self.part_signing(digest.as_deref());
        let answer = self
            .retrying("UploadPart", || {
                let body = body(
                    file.to_path_buf(),
                    (offset, len),
                    PART_READS,
                    None,
                    no_refusal.clone(),
                    progress.clone(),
                );
                self.call_with_etag(
                    Method::PUT,
                    &query,
                    sha256.as_deref(),
                    (body, len, &payload),
                )
            })
            .await
            .map_err(|e| self.remote_error(&format!("uploading part {number} of"), e))?;
        Ok(SentPart {
            etag: answer,
            sha256,
        })
    }

    /// Whether a part's SHA-256 is sent: to sign its payload, or as its checksum.
    pub(super) fn part_digest_needed(&self) -> bool {
        self.sign_payload || self.options.checksum == ChecksumMode::Sha256
    }

    /// From a part's SHA-256 (hex, when [`Target::part_digest_needed`]): the
    /// payload hash it is signed with, and its `x-amz-checksum-sha256`.
    pub(super) fn part_signing(&self, digest: Option<&str>) -> (String, Option<String>) {
        let payload = match digest {
            Some(d) if self.sign_payload => d.to_string(),
            _ => UNSIGNED.to_string(),
        };
        let sha256 = digest
            .filter(|_| self.options.checksum == ChecksumMode::Sha256)
            .and_then(checksum_sha256);
        (payload, sha256)
    }

    /// Completes the upload from the parts' ETags. S3 may answer 200 with an
    /// error document; that is a failure too.
    ///
    /// Our own request rather than `MultipartStore::complete_multipart`, which
    /// cannot do three things this needs: it always overwrites (no
    /// `If-None-Match: *`, which a create-only upload sends here, as on the PUT);
    /// it runs on object_store's client, whose read timeout a server that re-reads
    /// the whole object before it answers would exceed (this one goes on the
    /// patient client, bounded by the deadline only); and a 200 carrying an error
    /// document would come back as an unparsable answer rather than the error
    /// S3 named, which the exit code is chosen from.
    pub(crate) async fn complete(&self, upload_id: &str, parts: &[SentPart]) -> Result<()> {
        self.complete_parts(upload_id, parts)
            .await
            .map_err(|e| self.remote_error("completing the upload to", e))
    }

    /// [`Target::complete`], failing with the server's error as it came.
    pub(super) async fn complete_parts(
        &self,
        upload_id: &str,
        parts: &[SentPart],
    ) -> Result<(), Failure> {
        let mut doc = String::from("<CompleteMultipartUpload>");
        for (i, part) in parts.iter().enumerate() {
            let checksum = part
                .sha256
                .as_deref()
                .map(|c| format!("<ChecksumSHA256>{c}</ChecksumSHA256>"))
                .unwrap_or_default();
            doc.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag>{checksum}</Part>",
                i + 1,
                xml_escape(&part.etag)
            ));
        }
        doc.push_str("</CompleteMultipartUpload>");
        let digest = hex::encode(Sha256::digest(doc.as_bytes()));
        let query = format!("uploadId={}", uri_encode(upload_id));
        self.retrying("CompleteMultipartUpload", || {
            let body = reqwest::Body::from(doc.clone());
            let call = self.call(
                Method::POST,
                &query,
                None,
                (body, doc.len() as u64, &digest),
            );
            async move {
                let answer = call.await?;
                if answer.contains("<Error>") {
                    return Err(Failure::from_response(
                        reqwest::StatusCode::INTERNAL_SERVER_ERROR,
                        &answer,
                        &self.location,
                    ));
                }
                Ok(answer)
            }
        })
        .await
        .map(|_| ())
    }

    /// Aborts the multipart upload `upload_id` (object_store's call, with its
    /// retries) within 15 s, so no parts stay on the server. Returns what is
    /// left behind when it could not be aborted (for the error and the
    /// termination message), `None` when nothing is; the caller reports the
    /// error that led here.
    pub(crate) async fn abort(&self, upload_id: &str) -> Option<String> {
        let what = self.location.as_str();
        let id = upload_id.to_string();
        let call = self.store.abort_multipart(&self.object, &id);
        let failure = match tokio::time::timeout(Duration::from_secs(15), call).await {
            Ok(Ok(())) => {
                tracing::info!(object = what, "multipart upload aborted; no parts left");
                return None;
            }
            // Already gone: nothing is left.
            Ok(Err(object_store::Error::NotFound { .. })) => return None,
            Ok(Err(e)) => Error::remote("abort", e).chain(),
            Err(_) => "timed out after 15s".to_string(),
        };
        let left = format!(
            "multipart upload {upload_id} of {what} could not be aborted ({failure}): its parts \
             remain until a lifecycle rule or an abort removes them"
        );
        tracing::warn!(object = what, upload_id, "{left}");
        Some(left)
    }
}
