//! The file path for `gs://`: one resumable upload (GCS JSON API), its chunks
//! read from the file in order, the last chunk (which creates the object) sent
//! only once the snapshot verified and the file is seen unchanged; the session
//! cancelled on every failure, deadline or signal before that. The SHA-256 and
//! the cluster are the object's user metadata from the start; an etcd-manager
//! name is written create-only (`ifGenerationMatch=0`).
//!
//! Memory: one chunk (`PART_SIZE`, rounded to 256 KiB) and the one being read.
//! One chunk is in flight at a time: a resumable session takes its bytes in
//! order, so `CONCURRENCY` does not apply (README, Known limits).

use std::io::Read;
use std::path::PathBuf;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{FileState, verified, verify};
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
    let (tx, mut chunks) = mpsc::channel(1);
    let reader = tokio::task::spawn_blocking({
        let file = cfg.file.clone();
        move || read_chunks(file, chunk as usize, tx)
    });
    let mut progress = Progress::new("uploading", Some(before.len), cfg.progress);
    let sent = deadline
        .run(
            shutdown,
            "uploading the snapshot",
            send_all_but_last(&upload, &mut chunks, &mut progress),
        )
        .await;
    let checked = async {
        let (offset, count, last) = sent?;
        drop(chunks);
        reader
            .await
            .map_err(|e| Error::Other(format!("reading task failed: {e}")))?;
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

/// Sends every chunk but the last; returns the last one's offset, the chunks
/// sent and the last chunk, held back.
async fn send_all_but_last(
    upload: &Resumable,
    chunks: &mut mpsc::Receiver<Result<Bytes>>,
    progress: &mut Progress,
) -> Result<(u64, usize, Bytes)> {
    let mut held: Option<Bytes> = None;
    let (mut offset, mut count) = (0u64, 0usize);
    while let Some(next) = chunks.recv().await {
        let next = next?;
        if let Some(prev) = held.replace(next) {
            let len = prev.len() as u64;
            upload.put_chunk(offset, prev, false).await?;
            offset += len;
            count += 1;
            progress.add(len);
        }
    }
    let last = held.ok_or_else(|| Error::Data("the snapshot file was empty".into()))?;
    Ok((offset, count, last))
}

/// Reads `file` in chunks of `size` bytes (the last shorter) into `chunks`;
/// stops when the receiver is gone. A read error is sent as the last item.
fn read_chunks(file: PathBuf, size: usize, chunks: mpsc::Sender<Result<Bytes>>) {
    let read = || -> Result<()> {
        let mut input = std::fs::File::open(&file)
            .map_err(|e| Error::io(&file, "cannot open snapshot file", e))?;
        loop {
            let mut chunk = Vec::with_capacity(size);
            (&mut input)
                .take(size as u64)
                .read_to_end(&mut chunk)
                .map_err(|e| Error::io(&file, "cannot read snapshot file", e))?;
            if chunk.is_empty() || chunks.blocking_send(Ok(Bytes::from(chunk))).is_err() {
                return Ok(());
            }
        }
    };
    if let Err(e) = read() {
        let _ = chunks.blocking_send(Err(e));
    }
}
