//! The file path for `gs://`: one resumable upload (GCS JSON API), its chunks
//! read from the file in order, the last chunk (which creates the object) sent
//! only once the snapshot verified and the file is seen unchanged; the session
//! cancelled on every failure, deadline or signal before that. The SHA-256 and
//! the cluster are the object's user metadata from the start; an etcd-manager
//! name is written create-only (`ifGenerationMatch=0`).
//!
//! Memory: two chunks (`PART_SIZE`, rounded to 256 KiB): the one being sent and
//! the next, read meanwhile; the last is held until verification.
//! One chunk is in flight at a time: a resumable session takes its bytes in
//! order, so `CONCURRENCY` does not apply (README, Known limits).

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use super::{FileState, verified, verify};
use crate::base::buffers::Buffers;
use crate::base::cancel::{Deadline, Shutdown};
use crate::base::error::{Error, Result};
use crate::base::progress::Progress;
use crate::config::StoreConfig;
use crate::formats::snapshot::SnapshotInfo;
use crate::transport::gcs::{CHUNK_ALIGN, GcsSettings, Resumable};
use crate::transport::object::{CLUSTER_METADATA, SHA256_METADATA};
use crate::transport::remote::ClientTuning;

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
    let client = crate::transport::gcs::GcsClient::build(
        settings,
        &ClientTuning::for_deadline(deadline.remaining()),
    )?;
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
    let file = std::sync::Arc::new(
        std::fs::File::open(&cfg.file)
            .map_err(|e| Error::io(&cfg.file, "cannot open snapshot file", e))?,
    );
    let mut progress = Progress::new("uploading", Some(before.len), cfg.progress);
    let sent = deadline
        .run(
            shutdown,
            "uploading the snapshot",
            send_all_but_last(
                &upload,
                (&file, &cfg.file),
                (before.len, chunk),
                &mut progress,
            ),
        )
        .await;
    let checked = async {
        let (offset, count, last) = sent?;
        let info = verified(verification, &cfg.file, before).await?;
        Ok::<_, Error>((offset, count, last, info))
    }
    .await;
    let (offset, count, last, info) = match checked {
        Ok(done) => done,
        Err(e) => {
            let left = upload.cancel().await;
            return Err(e.leaving(left));
        }
    };
    // The object's creation: not cut by a signal (it may take effect before the
    // answer), bounded by the deadline.
    let len = last.len() as u64;
    let done = deadline
        .run(
            &Shutdown::never(),
            "completing the upload",
            upload.put_chunk(offset, last, true),
        )
        .await;
    if let Err(e) = done {
        let left = upload.cancel().await;
        return Err(e.leaving(left));
    }
    progress.add(len);
    Ok((sha256, count + 1, info))
}

/// Sends every chunk of the `total` bytes of `file` but the last, each read
/// while the one before is sent; returns the last one's offset, the chunks
/// sent and the last chunk, held back. A file shorter than `total` is an error
/// (a longer one is found by the check that it is unchanged).
async fn send_all_but_last(
    upload: &Resumable,
    (file, name): (&Arc<std::fs::File>, &Path),
    (total, size): (u64, u64),
    progress: &mut Progress,
) -> Result<(u64, usize, Bytes)> {
    if total == 0 {
        return Err(Error::Data("the snapshot file was empty".into()));
    }
    // The chunk being sent and the next, their buffers reused.
    let buffers = Buffers::new(2);
    let read = |offset: u64| {
        let len = size.min(total - offset) as usize;
        super::generic::read_part((file.clone(), name), offset, len, &buffers)
    };
    let (mut offset, mut count) = (0u64, 0usize);
    let mut next = read(0);
    loop {
        let chunk = next.await?;
        let len = chunk.len() as u64;
        if offset + len >= total {
            return Ok((offset, count, chunk));
        }
        // Memory: this chunk and the next, read while this one is sent.
        next = read(offset + len);
        upload.put_chunk(offset, chunk, false).await?;
        offset += len;
        count += 1;
        progress.add(len);
    }
}
