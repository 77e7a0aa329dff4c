//! The file path for `gs://`: one resumable upload (GCS JSON API), its chunks
//! read from the file in order, the last chunk (which creates the object) sent
//! only once the snapshot verified and the file is seen unchanged; the session
//! cancelled on every failure, deadline or signal before that. The SHA-256 and
//! the cluster are the object's user metadata from the start; an etcd-manager
//! name is written create-only (`ifGenerationMatch=0`).
//!
//! Memory: a few MiB whatever `PART_SIZE`: each chunk's body is read from the
//! file as it is sent (transport/put's bodies), the last one only once the
//! snapshot verified. One chunk is in flight at a time: a resumable session
//! takes its bytes in order, so `CONCURRENCY` does not apply (README, Known
//! limits).

use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::{FileState, changed, file_state, verified, verify};
use crate::base::cancel::{Deadline, Shutdown};
use crate::base::error::{Error, Result};
use crate::config::StoreConfig;
use crate::formats::snapshot::SnapshotInfo;
use crate::transport::gcs::{CHUNK_ALIGN, GcsSettings};
use crate::transport::object::{CLUSTER_METADATA, SHA256_METADATA};
use crate::transport::put::{self, LastCheck, shared_progress};

/// Bytes read from the file at a time into a chunk's body, and how many such
/// reads may wait to be sent.
const READS: (usize, usize) = (1 << 20, 2);

/// Stores `cfg.file` to `settings`' bucket; returns the SHA-256, the number of
/// chunks and what verification found.
pub(super) async fn store_resumable(
    cfg: &StoreConfig,
    settings: &GcsSettings,
    before: FileState,
    part_size: u64,
    shutdown: &Shutdown,
    deadline: &Deadline,
) -> Result<(String, usize, SnapshotInfo)> {
    let chunk = part_size.div_ceil(CHUNK_ALIGN).max(1) * CHUNK_ALIGN;
    let (sha256, verification) = verify::hash_and_verify(&cfg.file, shutdown, deadline).await?;
    let client = crate::transport::gcs::GcsClient::build(settings, &cfg.remote.tuning(deadline))?;
    let mut metadata = vec![(SHA256_METADATA, sha256.as_str())];
    if let Some(cluster) = cfg.cluster.as_deref() {
        metadata.push((CLUSTER_METADATA, cluster));
    }
    // Not cut by a signal: the session exists once the server answers, and only
    // its URL lets us cancel it. The deadline bounds it.
    let upload = deadline
        .run(
            &Shutdown::never(),
            "starting the resumable upload",
            client.start_resumable(&cfg.key, before.len, &metadata, cfg.etcd_manager.is_some()),
        )
        .await?;
    if let Some(reason) = shutdown.requested() {
        let left = upload.cancel().await;
        return Err(Error::Cancelled(reason).leaving(left));
    }
    let progress = shared_progress(before.len, cfg.progress);
    let refusal = Arc::new(Mutex::new(None));
    let body = |at: (u64, u64), gate| {
        put::body(
            cfg.file.clone(),
            at,
            READS,
            gate,
            refusal.clone(),
            progress.clone(),
        )
    };
    // The last chunk starts here: every chunk before it is whole (256 KiB-aligned).
    let last_at = before.len.saturating_sub(1) / chunk * chunk;
    let sent = deadline
        .run(shutdown, "uploading the snapshot", async {
            let mut offset = 0;
            while offset < last_at {
                let len = chunk.min(last_at - offset);
                let sent = upload.put_body(offset, (body((offset, len), None), len), false);
                sent.await?;
                offset += len;
            }
            Ok::<_, Error>((last_at / chunk) as usize)
        })
        .await;
    let checked = async {
        if before.len == 0 {
            return Err(Error::Data("the snapshot file was empty".into()));
        }
        let count = sent?;
        let info = verified(verification, &cfg.file, before).await?;
        Ok::<_, Error>((count, info))
    }
    .await;
    let (count, info) = match checked {
        Ok(done) => done,
        Err(e) => {
            let left = upload.cancel().await;
            return Err(e.leaving(left));
        }
    };
    // The object's creation: the last chunk, read from the file now that it
    // verified; its last piece goes only if the file is still as first seen (a
    // refused piece cuts the request, which creates nothing). Not cut by a
    // signal (it may take effect before the answer), bounded by the deadline.
    let file = cfg.file.clone();
    let last: LastCheck = Arc::new(move || match file_state(&file) {
        Ok(now) if now == before => Ok(()),
        _ => Err(changed(&file).to_string()),
    });
    let (_verdict, open) = watch::channel(Some(Ok(())));
    let len = before.len - last_at;
    let done = deadline
        .run(
            &Shutdown::never(),
            "completing the upload",
            upload.put_body(
                last_at,
                (body((last_at, len), Some((open, last))), len),
                true,
            ),
        )
        .await;
    let refused = refusal.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Err(e) = done {
        let e = refused.map(Error::Data).unwrap_or(e);
        let left = upload.cancel().await;
        return Err(e.leaving(left));
    }
    Ok((sha256, count + 1, info))
}
