//! The multipart engine of uploads from memory (`--from-etcd`, `copy`, stores
//! without a streaming upload of ours), on object_store's `MultipartUpload`: parts uploaded in
//! parallel with back-pressure, completed only when the caller says the bytes
//! verified, aborted on every failure.
//!
//! Multipart memory is bounded: at most `concurrency` parts in flight, and a
//! part is taken only when a slot is free; from a channel, one queued and one
//! being made besides, so about `part_size * (concurrency + 2)` bytes whatever the
//! size ([`send_each`] with a source that reads on demand: `concurrency` parts).

use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{MultipartUpload, ObjectStore, PutMultipartOptions, PutPayload};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::base::cancel::{Deadline, Shutdown};
use crate::base::error::{Error, Result};
use crate::transport::put::Target;

/// Starts a multipart upload of `path` recording `opts`' attributes: on S3
/// (`target`, naming the same key) on our own requests, which carry SSE-C's key
/// and the part checksums through Complete (put/parts.rs); elsewhere
/// object_store's. Not cut by a signal: the server may create the upload before
/// we learn its id, and only the id lets us abort it; the deadline bounds it,
/// and a signal that came meanwhile aborts it here.
pub(crate) async fn start(
    (client, path): (&Arc<dyn ObjectStore>, &ObjectPath),
    target: Option<&Target>,
    opts: PutMultipartOptions,
    what: &str,
    shutdown: &Shutdown,
    deadline: &Deadline,
) -> Result<Box<dyn MultipartUpload>> {
    let upload = deadline
        .run(&Shutdown::never(), "starting the multipart upload", async {
            let started = match target {
                Some(target) => target.start_upload(opts).await,
                None => client.put_multipart_opts(path, opts).await,
            };
            started.map_err(|e| Error::remote(format!("upload to {what}"), e))
        })
        .await?;
    if let Some(reason) = shutdown.requested() {
        let left = abort(upload, JoinSet::new(), what).await;
        return Err(Error::Cancelled(reason).leaving(left));
    }
    Ok(upload)
}

/// Uploads every part from `parts`, at most `concurrency` at once. Returns the
/// number of parts. On error the caller must abort (see [`abort`]).
pub(crate) async fn send_parts(
    upload: &mut dyn MultipartUpload,
    parts: &mut mpsc::Receiver<Result<Bytes>>,
    in_flight: &mut JoinSet<object_store::Result<()>>,
    concurrency: usize,
    what: &str,
    progress: &mut crate::base::progress::Progress,
) -> Result<usize> {
    let next = async || parts.recv().await;
    send_each(upload, next, in_flight, concurrency, what, progress).await
}

/// Uploads every part `next` gives until it gives `None`, at most `concurrency`
/// at once. A part is asked for only once a slot is free, so none waits in
/// memory for one. Returns the number of parts. On error the caller must abort
/// (see [`abort`]).
pub(crate) async fn send_each(
    upload: &mut dyn MultipartUpload,
    mut next: impl AsyncFnMut() -> Option<Result<Bytes>>,
    in_flight: &mut JoinSet<object_store::Result<()>>,
    concurrency: usize,
    what: &str,
    progress: &mut crate::base::progress::Progress,
) -> Result<usize> {
    let mut count = 0;
    loop {
        while in_flight.len() >= concurrency {
            join_one(in_flight, what).await?;
        }
        let Some(part) = next().await else {
            break;
        };
        let bytes = part?;
        progress.add(bytes.len() as u64);
        in_flight.spawn(upload.put_part(PutPayload::from(bytes)));
        count += 1;
    }
    while !in_flight.is_empty() {
        join_one(in_flight, what).await?;
    }
    Ok(count)
}

async fn join_one(in_flight: &mut JoinSet<object_store::Result<()>>, what: &str) -> Result<()> {
    match in_flight.join_next().await {
        Some(Ok(Ok(()))) | None => Ok(()),
        Some(Ok(Err(e))) => Err(Error::remote(format!("uploading a part of {what}"), e)),
        Some(Err(join)) => Err(Error::Other(format!(
            "a part upload of {what} failed: {join}"
        ))),
    }
}

/// Cancels the parts still in flight and aborts the upload so no parts stay on
/// the server. Bounded in time; a failed abort is logged, and the original error
/// is what the caller reports.
pub(crate) async fn abort(
    mut upload: Box<dyn MultipartUpload>,
    mut in_flight: JoinSet<object_store::Result<()>>,
    what: &str,
) -> Option<String> {
    in_flight.shutdown().await;
    let limit = std::time::Duration::from_secs(15);
    let failure = match tokio::time::timeout(limit, upload.abort()).await {
        // Azure has no abort: blocks never committed are no blob, and the service
        // discards them (transport/azure/).
        Ok(Ok(())) if what.starts_with("az://") => {
            tracing::info!(
                object = what,
                "upload abandoned: its staged blocks were never committed, so no blob exists \
                 (Azure discards uncommitted blocks within 7 days)"
            );
            return None;
        }
        Ok(Ok(())) => {
            tracing::info!(object = what, "multipart upload aborted; no parts left");
            return None;
        }
        Ok(Err(e)) => Error::remote("abort", e).chain(),
        Err(_) => "timed out after 15s".to_string(),
    };
    let left = format!(
        "the multipart upload of {what} could not be aborted ({failure}): its parts remain \
         until a lifecycle rule or an abort removes them"
    );
    tracing::warn!(object = what, "{left}");
    Some(left)
}

/// Completes the upload. A signal does not interrupt it (once sent, the object
/// exists whole or not at all, and a finished backup deserves exit 0); the deadline
/// does. When completing fails, `stored` is asked whether the object at the key is
/// ours anyway (the request succeeded and only its answer was lost: a timeout, a
/// reset, or a retried Complete told NoSuchUpload); if not, the upload is aborted
/// and the error returned.
pub(crate) async fn complete(
    mut upload: Box<dyn MultipartUpload>,
    in_flight: JoinSet<object_store::Result<()>>,
    what: &str,
    deadline: &Deadline,
    stored: impl AsyncFnOnce() -> bool,
) -> Result<()> {
    let completed = deadline
        .run(
            &Shutdown::never(),
            "completing the multipart upload",
            async {
                upload
                    .complete()
                    .await
                    .map_err(|e| Error::remote(format!("completing the upload to {what}"), e))
            },
        )
        .await;
    let Err(e) = completed else {
        return Ok(());
    };
    if stored().await {
        tracing::warn!(
            object = what,
            error = %e.chain(),
            "completing the upload reported an error, but the object at the key has our size and SHA-256: stored"
        );
        return Ok(());
    }
    let left = abort(upload, in_flight, what).await;
    Err(e.leaving(left))
}
