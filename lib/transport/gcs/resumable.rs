//! Resumable uploads: chunks in order, the object created by the last one.

use std::sync::Arc;

use bytes::Bytes;
use futures::FutureExt;
use object_store::{MultipartUpload, PutPayload, PutResult};

use super::client::{GcsClient, generic, status_error, transport_error};
use crate::base::error::{Error, Result};

/// One resumable upload session: chunks sent in order, the object created by
/// the last one; cancelled (the session deleted) on any failure before that.
pub(crate) struct Resumable {
    pub(super) client: GcsClient,
    pub(super) session: String,
    pub(super) total: Option<u64>,
    pub(super) location: String,
}

/// The chunk granularity of resumable uploads: every chunk but the last is a
/// multiple of 256 KiB.
pub const CHUNK_ALIGN: u64 = 256 << 10;

impl Resumable {
    /// Sends `bytes` at `offset`; `last` completes the object.
    pub(crate) async fn put_chunk(&self, offset: u64, bytes: Bytes, last: bool) -> Result<()> {
        let len = bytes.len() as u64;
        self.put_body(offset, (crate::transport::stall::pieces(bytes), len), last)
            .await
    }

    /// Sends the `len` bytes of `body` at `offset`; `last` completes the object.
    /// A body that ends early (a read error, a refused last piece) fails the
    /// request and creates nothing.
    pub(crate) async fn put_body(
        &self,
        offset: u64,
        (body, len): (reqwest::Body, u64),
        last: bool,
    ) -> Result<()> {
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
            .header("content-length", len);
        if let Some(auth) = self.client.authorization().await? {
            request = request.header("authorization", auth);
        }
        let response = self
            .client
            .send(request, (body, len))
            .await
            .map_err(|e| transport_error(&self.location, e))?;
        let status = response.status().as_u16();
        match (status, last) {
            (308, false) | (200 | 201, true) => Ok(()),
            _ => Err(status_error(&self.location, response, self.client.settings.stall).await),
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
        match self
            .client
            .send(request, (reqwest::Body::from(""), 0))
            .await
        {
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

pub(super) type Sent =
    futures::future::Shared<futures::future::BoxFuture<'static, std::result::Result<(), String>>>;

/// A multipart upload on one resumable session.
pub(super) struct Chunked {
    pub(super) session: Arc<Resumable>,
    /// Bytes not sent yet: under 256 KiB, or the last 256 KiB held back.
    pub(super) held: Vec<u8>,
    /// Where the next chunk starts.
    pub(super) offset: u64,
    /// The request of the previous part; the next waits for it.
    pub(super) previous: Sent,
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
