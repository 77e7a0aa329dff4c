//! The file path for a store reached only through object_store's traits (the
//! seam for backends without a streaming upload of ours: Azure and GCS next).
//! Same promises as the S3 path: the SHA-256 recorded at creation, parts read
//! from the file and sent `CONCURRENCY` at a time, the upload completed only once
//! the snapshot verified and the file is seen unchanged, aborted on every failure,
//! deadline or signal before that, and the object read back.
//!
//! Memory: the parts in flight, at most `PART_SIZE x CONCURRENCY` (object_store's
//! `put_part` takes each part as owned bytes): a part is read from the file, by
//! offset, only once a slot is free. Hence az://'s 4 MiB default (config/part_size.rs).

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutMultipartOptions};
use tokio::task::JoinSet;

use super::{FileState, verified, verify};
use crate::base::buffers::Buffers;
use crate::base::cancel::{Deadline, Shutdown};
use crate::base::error::{Error, Result};
use crate::base::progress::Progress;
use crate::config::StoreConfig;
use crate::formats::snapshot::SnapshotInfo;
use crate::transport::multipart;
use crate::transport::object::stored_matches;

/// Stores `cfg.file` at `path` of `client` as a multipart upload; returns the
/// SHA-256, the number of parts and what verification found. `before` is the
/// file as first seen; `part_size` the size of each part but the last.
pub(super) async fn store_multipart(
    cfg: &StoreConfig,
    (client, path): (&Arc<dyn ObjectStore>, &ObjectPath),
    before: FileState,
    part_size: u64,
    shutdown: &Shutdown,
    deadline: &Deadline,
) -> Result<(String, usize, SnapshotInfo)> {
    if cfg.etcd_manager.is_some() {
        // A free etcd-manager name must be written create-only; object_store's
        // multipart upload has no condition to say so.
        return Err(Error::Config(format!(
            "BACKUP_STORE: {} cannot write a backup create-only",
            cfg.remote.describe("")
        )));
    }
    let what = cfg.remote.describe(&cfg.key);
    let (sha256, verification) = verify::hash_and_verify(&cfg.file, shutdown, deadline).await?;
    let keep_meta = cfg.remote.keeps_metadata();
    let opts = PutMultipartOptions {
        attributes: cfg.remote.backup_attributes(
            Some(&sha256),
            cfg.cluster.as_deref(),
            &crate::transport::object::encryption_metadata(cfg.encrypt.as_ref()),
        ),
        ..PutMultipartOptions::default()
    };
    // Opened before the upload starts, so a failure here leaves nothing to abort.
    let file = Arc::new(
        std::fs::File::open(&cfg.file)
            .map_err(|e| Error::io(&cfg.file, "cannot open snapshot file", e))?,
    );
    // Not S3 (which streams from the file): object_store's upload.
    let mut upload =
        multipart::start((client, path), None, opts, &what, shutdown, deadline).await?;
    // One buffer per part in flight and the one being read, reused.
    let buffers = Buffers::new(cfg.transfer.concurrency + 1);
    let mut offset = 0u64;
    let next = async || {
        // The file as first seen, in `part_size` pieces; a file that shrank
        // meanwhile fails its read, one that grew fails verification.
        let at = offset;
        let len = part_size.min(before.len.checked_sub(at)?);
        if len == 0 {
            return None;
        }
        offset += len;
        Some(read_part(file.clone(), &cfg.file, at, len as usize, &buffers).await)
    };
    let mut in_flight = JoinSet::new();
    let mut progress = Progress::new("uploading", Some(before.len), cfg.progress);
    let sent = deadline
        .run(
            shutdown,
            "uploading the snapshot",
            multipart::send_each(
                upload.as_mut(),
                next,
                &mut in_flight,
                cfg.transfer.concurrency,
                &what,
                &mut progress,
            ),
        )
        .await;
    let checked = async {
        let count = sent?;
        let info = verified(verification, &cfg.file, before).await?;
        Ok::<_, Error>((count, info))
    }
    .await;
    let (count, info) = match checked {
        Ok(done) => done,
        Err(e) => {
            let left = multipart::abort(upload, in_flight, &what).await;
            return Err(e.leaving(left));
        }
    };
    multipart::complete(upload, in_flight, &what, deadline, async || {
        keep_meta && stored_matches(client, path, before.len, &sha256).await
    })
    .await?;
    Ok((sha256, count, info))
}

/// Reads the `len` bytes of `file` (named `name`) at `offset` into a buffer of
/// `buffers`, off the runtime.
async fn read_part(
    file: Arc<std::fs::File>,
    name: &Path,
    offset: u64,
    len: usize,
    buffers: &Buffers,
) -> Result<Bytes> {
    let name: PathBuf = name.to_path_buf();
    let buffers = buffers.clone();
    tokio::task::spawn_blocking(move || {
        let mut part = buffers.take(len);
        file.read_exact_at(&mut part, offset)
            .map_err(|e| Error::io(&name, "cannot read snapshot file", e))?;
        Ok(buffers.hand_out(part))
    })
    .await
    .map_err(|e| Error::Other(format!("reading task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::settings::Inputs;
    use crate::formats::snapshot::tests::{gzip, synthetic};
    use object_store::ObjectStoreExt;
    use std::time::Duration;

    /// A store config for `file` into `dir`; the client is opened by the test.
    fn config(dir: &std::path::Path, file: PathBuf) -> StoreConfig {
        let inputs = Inputs::from_env_vars(
            [
                ("STORAGE_URL", format!("file://{}", dir.display())),
                ("CLUSTER", "c".into()),
                ("BACKUP_TO_CREATE", "b.db.gz".into()),
                ("SNAPSHOT_FILE", file.display().to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v)),
        );
        let mut cfg = StoreConfig::from_inputs(&inputs).unwrap();
        cfg.file = file;
        cfg.transfer.concurrency = 2;
        cfg
    }

    async fn run(cfg: &StoreConfig, client: &Arc<dyn ObjectStore>) -> Result<(String, usize)> {
        let before = super::super::file_state(&cfg.file)?;
        let deadline = Deadline::after(Duration::from_secs(60));
        let path = ObjectPath::from(cfg.key.as_str());
        let (sha, parts, _) = store_multipart(
            cfg,
            (client, &path),
            before,
            64 << 10,
            &Shutdown::never(),
            &deadline,
        )
        .await?;
        Ok((sha, parts))
    }

    /// What the directory holds besides the input, staging files included.
    fn entries(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn a_verified_file_is_stored_in_parts_and_a_corrupt_one_leaves_nothing() {
        let (input, store) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let client: Arc<dyn ObjectStore> =
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(store.path()).unwrap());
        let good = gzip(&synthetic(200));
        let file = input.path().join("snapshot.db.gz");
        std::fs::write(&file, &good).unwrap();
        let cfg = config(store.path(), file.clone());
        let (sha, parts) = run(&cfg, &client).await.unwrap();
        assert_eq!(sha, hex::encode(crate::base::digest::Sha256::digest(&good)));
        assert_eq!(parts, good.len().div_ceil(64 << 10));
        let path = ObjectPath::from(cfg.key.as_str());
        let stored = client.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(stored.as_ref(), good.as_slice());

        // The same size, one byte of the trailer changed: refused, and neither an
        // object at a new key nor a staging file is left.
        let mut bad = synthetic(200);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        std::fs::write(&file, gzip(&bad)).unwrap();
        let mut other = cfg.clone();
        other.key = "other.db.gz".into();
        let err = run(&other, &client).await.unwrap_err();
        assert_eq!(err.exit_code(), 65, "{err}");
        assert_eq!(entries(store.path()), vec![cfg.key.clone()]);
    }
}
