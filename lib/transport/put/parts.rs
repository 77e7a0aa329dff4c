//! A multipart upload whose parts come from memory (`store --from-etcd` and
//! `copy` cut a stream into parts), on the requests a file's parts go by
//! (put.rs). It is object_store's [`MultipartUpload`], so the multipart engine
//! (transport/multipart.rs) drives it as it drives any store's, but every
//! request carries what put.rs sends: SSE-C's key on CreateMultipartUpload,
//! each UploadPart and CompleteMultipartUpload (object_store's own upload
//! completes without it, which a server that checks SSE-C refuses after every
//! part was sent), each part's checksum under `CHECKSUM=sha256`; a 200 answer
//! to Complete that carries an error document is that error; and Complete
//! waits on the patient client, bounded by the caller's deadline only.
//!
//! Memory: the parts handed to it, as object_store's; nothing is copied.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use object_store::multipart::MultipartStore;
use object_store::{MultipartUpload, PutMultipartOptions, PutPayload, PutResult, UploadPart};
use reqwest::Method;

use super::{Failure, SentPart, Target, uri_encode};
use crate::base::digest::Sha256;

impl Target {
    /// Starts a multipart upload of this key recording `opts`' attributes;
    /// its parts are then given from memory. The start is object_store's call
    /// (with its retries, and SSE-C's headers).
    pub(crate) async fn start_upload(
        &self,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let upload_id = self.store.create_multipart_opts(&self.object, opts).await?;
        Ok(Box::new(FromMemory {
            target: Arc::new(self.clone()),
            upload_id,
            sent: Arc::default(),
            next: 0,
        }))
    }

    /// Uploads part `number` (from 1) of `upload_id`, retrying what a retry
    /// can fix.
    async fn send_memory_part(
        &self,
        upload_id: &str,
        number: usize,
        bytes: Bytes,
    ) -> Result<SentPart, Failure> {
        let query = format!("partNumber={number}&uploadId={}", uri_encode(upload_id));
        // Hashing a part takes a while: not on the runtime's threads.
        let digest = if self.part_digest_needed() {
            let part = bytes.clone();
            let hashed = tokio::task::spawn_blocking(move || hex::encode(Sha256::digest(&part)));
            Some(
                hashed
                    .await
                    .map_err(|e| Failure::local(format!("hashing part {number} failed: {e}")))?,
            )
        } else {
            None
        };
        let (payload, sha256) = self.part_signing(digest.as_deref());
        let len = bytes.len() as u64;
        let etag = self
            .retrying("UploadPart", || {
                self.call_with_etag(
                    Method::PUT,
                    &query,
                    sha256.as_deref(),
                    (
                        crate::transport::stall::pieces(bytes.clone()),
                        len,
                        &payload,
                    ),
                )
            })
            .await?;
        Ok(SentPart { etag, sha256 })
    }
}

/// One upload: the parts as they were sent, by number.
struct FromMemory {
    target: Arc<Target>,
    upload_id: String,
    sent: Arc<Mutex<Vec<Option<SentPart>>>>,
    /// Parts handed out so far.
    next: usize,
}

impl std::fmt::Debug for FromMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "multipart upload to {}", self.target.location)
    }
}

#[async_trait::async_trait]
impl MultipartUpload for FromMemory {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.next += 1;
        let number = self.next;
        let (target, id, sent) = (
            self.target.clone(),
            self.upload_id.clone(),
            self.sent.clone(),
        );
        Box::pin(async move {
            let part = target
                .send_memory_part(&id, number, Bytes::from(data))
                .await
                .map_err(|f| f.error)?;
            let mut sent = sent.lock().expect("not poisoned");
            if sent.len() < number {
                sent.resize(number, None);
            }
            sent[number - 1] = Some(part);
            Ok(())
        })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let parts: Option<Vec<SentPart>> = {
            let sent = self.sent.lock().expect("not poisoned");
            (sent.len() == self.next && self.next > 0)
                .then(|| sent.iter().cloned().collect())
                .flatten()
        };
        let Some(parts) = parts else {
            return Err(object_store::Error::Generic {
                store: "S3",
                source: format!(
                    "completing an upload of {} parts before every part was sent",
                    self.next
                )
                .into(),
            });
        };
        self.target
            .complete_parts(&self.upload_id, &parts)
            .await
            .map_err(|f| f.error)?;
        Ok(PutResult {
            e_tag: None,
            version: None,
            extensions: Default::default(),
        })
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        let target = &self.target;
        match target
            .store
            .abort_multipart(&target.object, &self.upload_id)
            .await
        {
            // Already gone: nothing is left.
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            other => other,
        }
    }
}
