//! The S3 path: one streaming PUT up to `SINGLE_PUT_MAX`, else a multipart upload
//! of parts read from the file as they are sent, completed only once the snapshot
//! verified; and the abort of what killed earlier runs of the key left.

use std::sync::Arc;
use std::time::SystemTime;

use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;

use super::{FileState, changed, file_state, verified};
use crate::base::cancel::{Deadline, Shutdown};
use crate::base::error::{Error, Result};
use crate::config::StoreConfig;
use crate::formats::snapshot::SnapshotInfo;
use crate::transport::object::stored_matches;

/// S3, up to `SINGLE_PUT_MAX`: one streaming PUT (`put.rs`) whose last chunk
/// waits for `verification` and for the file to be seen unchanged.
#[allow(clippy::too_many_arguments)]
pub(super) async fn put_streaming(
    cfg: &StoreConfig,
    target: &crate::transport::put::Target,
    sha256: &str,
    verification: tokio::task::JoinHandle<Result<SnapshotInfo>>,
    before: FileState,
    shutdown: &Shutdown,
    deadline: &Deadline,
) -> Result<SnapshotInfo> {
    let (verdict, gate) = tokio::sync::watch::channel(None);
    let file = cfg.file.clone();
    let checker = tokio::spawn(async move {
        let checked = verified(verification, &file, before).await;
        let _ = verdict.send(Some(
            checked.as_ref().map(|_| ()).map_err(|e| e.to_string()),
        ));
        checked
    });
    // A signal either cuts the PUT before its last byte (no object) or, once
    // that byte was let out (the object may exist), waits for the answer: the
    // run then reports what the server did. Decided once, under one lock.
    #[derive(Default)]
    struct Finish {
        released: bool,
        stopped: bool,
    }
    let finish = Arc::new(std::sync::Mutex::new(Finish::default()));
    let file = cfg.file.clone();
    let last: crate::transport::put::LastCheck = {
        let finish = finish.clone();
        Arc::new(move || {
            let mut f = finish.lock().expect("not poisoned");
            if f.stopped {
                return Err("the upload was stopped by a signal".to_string());
            }
            match file_state(&file) {
                Ok(now) if now == before => {
                    f.released = true;
                    Ok(())
                }
                _ => Err(changed(&file).to_string()),
            }
        })
    };
    let stop = async {
        let reason = shutdown.wait().await;
        {
            let mut f = finish.lock().expect("not poisoned");
            if !f.released {
                f.stopped = true;
                return reason;
            }
        }
        tracing::warn!(
            signal = %reason,
            "stop requested after the whole snapshot was sent; waiting for the server's answer"
        );
        std::future::pending().await
    };
    let unstoppable = Shutdown::never();
    let put = deadline.run(
        &unstoppable,
        "uploading the snapshot",
        target.put_file(&cfg.file, before.len, sha256, (&gate, &last), cfg.progress),
    );
    let sent = tokio::select! {
        reason = stop => Err(Error::Cancelled(reason)),
        sent = put => sent,
    };
    match sent {
        Ok(()) => checker
            .await
            .map_err(|e| Error::Other(format!("verification task failed: {e}")))?,
        Err(e) => {
            // A failed verification is the cause of a refused body: report it.
            if checker.is_finished() {
                if let Ok(Err(found)) = checker.await {
                    return Err(found);
                }
            } else {
                checker.abort();
            }
            Err(e)
        }
    }
}

/// Aborts the incomplete multipart uploads of this very key initiated before
/// this run started: what a SIGKILLed or OOM-killed run left (a signal aborts
/// its own). A concurrent run of the same key whose upload started earlier loses
/// it and fails its Complete (README, "Known limits"). A server that cannot list
/// them (s3s-fs) or a failed listing (tried once) is a warning: the backup goes on.
pub(super) async fn abort_stale(
    target: &crate::transport::put::Target,
    run_started: SystemTime,
    shutdown: &Shutdown,
    deadline: &Deadline,
) -> Result<()> {
    let key = target.full_key().to_string();
    let stale = |p: &crate::transport::put::Pending| p.key == key && p.initiated < run_started;
    let swept = deadline
        .run(shutdown, "aborting stale multipart uploads", async {
            Ok(target.single_try().sweep(stale, false).await)
        })
        .await?;
    match swept {
        Ok(Some(s)) => {
            let failed = s.failed.as_ref().map_or(0, |(_, n)| *n);
            if let Some((e, _)) = &s.failed {
                tracing::warn!(key = %key, failed, error = %e.chain(), "some stale multipart uploads of the key could not be aborted");
            }
            tracing::info!(key = %key, aborted = s.aborted, failed, "stale multipart uploads of the key aborted");
        }
        Ok(None) => tracing::warn!(
            key = %key,
            "the server does not list incomplete multipart uploads (ListMultipartUploads \
             not implemented): uploads left by killed runs of this key are not aborted"
        ),
        Err(e) => tracing::warn!(
            key = %key,
            error = %e.chain(),
            "cannot list the key's incomplete multipart uploads; stale ones are not aborted"
        ),
    }
    Ok(())
}

/// S3, above `SINGLE_PUT_MAX`: a multipart upload whose parts stream from the
/// file in parallel (put.rs); completed only once verification passed and the
/// file is unchanged, aborted on every failure, deadline or signal before that.
#[allow(clippy::too_many_arguments)]
pub(super) async fn put_parts_streaming(
    cfg: &StoreConfig,
    (target, client, path): (
        &crate::transport::put::Target,
        &Arc<dyn ObjectStore>,
        &ObjectPath,
    ),
    sha256: &str,
    part_size: u64,
    verification: tokio::task::JoinHandle<Result<SnapshotInfo>>,
    before: FileState,
    shutdown: &Shutdown,
    deadline: &Deadline,
) -> Result<(usize, SnapshotInfo)> {
    // Not cut by a signal: once sent, the server may have created the upload,
    // and only its answer tells the id that aborting needs. The deadline bounds it.
    let id = deadline
        .run(
            &Shutdown::never(),
            "starting the multipart upload",
            target.create_multipart(sha256),
        )
        .await?;
    if let Some(reason) = shutdown.requested() {
        let left = target.abort(&id).await;
        return Err(Error::Cancelled(reason).leaving(left));
    }
    let sent: Result<_> = async {
        let etags = deadline
            .run(
                shutdown,
                "uploading parts",
                target.send_parts(
                    &id,
                    &cfg.file,
                    (before.len, part_size),
                    cfg.transfer.concurrency,
                    cfg.progress,
                ),
            )
            .await?;
        let info = deadline
            .run(
                shutdown,
                "verifying the snapshot",
                verified(verification, &cfg.file, before),
            )
            .await?;
        Ok((etags, info))
    }
    .await;
    let (etags, info) = match sent {
        Ok(v) => v,
        Err(e) => {
            let left = target.abort(&id).await;
            return Err(e.leaving(left));
        }
    };
    // A signal does not interrupt completing (once sent, the object exists whole
    // or not at all, and a finished backup deserves exit 0); the deadline does.
    let completed = deadline
        .run(
            &Shutdown::never(),
            "completing the multipart upload",
            target.complete(&id, &etags),
        )
        .await;
    if let Err(e) = completed {
        // The request may have succeeded with only its answer lost (a timeout, a
        // reset, or a retried Complete told NoSuchUpload): look at the key.
        if stored_matches(client, path, before.len, sha256).await {
            tracing::warn!(
                object = %cfg.remote.describe(&cfg.key),
                error = %e.chain(),
                "completing the upload reported an error, but the object at the key has our size and SHA-256: stored"
            );
        } else {
            let left = target.abort(&id).await;
            return Err(e.leaving(left));
        }
    }
    Ok((etags.len(), info))
}
