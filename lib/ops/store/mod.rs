//! `store`: upload a snapshot file to exactly one key, verified, or leave nothing.
//!
//! 1. Hash the file (SHA-256) so the digest can be sent with the object: S3 takes
//!    user metadata when a multipart upload is created, before any part.
//! 2. Upload: one PUT up to the part size; above it a multipart upload whose parts
//!    go in parallel while a second thread verifies the snapshot (gzip intact, etcd
//!    SHA-256 trailer matching) from the same buffers.
//! 3. Complete only when verification passed and the file did not change; then
//!    read back the object's size and recorded digest.
//!
//! Every failure, deadline or signal before completion aborts the multipart upload,
//! so no object appears at the key and no parts are left behind.
//!
//! With recipients (`ENCRYPT_RECIPIENTS`), step 1 verifies the file and encrypts
//! it into a locked temporary file (ciphertext only, `encrypt.rs`); that file is
//! what the steps after it store.

use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;

use crate::base::cancel::{Deadline, Shutdown};
use crate::base::error::{Error, Result};
use crate::base::time::mib_per_s;
use crate::config::StoreConfig;
use crate::formats::snapshot::{self, SnapshotInfo};
use crate::transport::object::{confirm, encryption_metadata, stored_matches};
use crate::transport::remote::Remote;

mod encrypt;
mod from_etcd;
mod gcs;
mod generic;
mod verify;

/// S3 allows at most this many parts.
const MAX_PARTS: u64 = 10_000;

/// What `store` did.
#[derive(Debug, Clone)]
pub struct StoreReport {
    /// `s3://bucket/key` or `file://dir/key`.
    pub location: String,
    /// Bytes stored.
    pub bytes: u64,
    /// SHA-256 (hex) of the stored bytes.
    pub sha256: String,
    /// Whether the digest was recorded as object metadata.
    pub sha256_recorded: bool,
    /// Parts uploaded (1 for a single PUT).
    pub parts: usize,
    /// What snapshot verification found.
    pub snapshot: SnapshotInfo,
    /// Wall time.
    pub seconds: f64,
}

/// Uploads `cfg.file` to `cfg.key`. See the module documentation for the steps.
#[tracing::instrument(name = "store", skip_all, fields(key = %cfg.key))]
pub async fn store(cfg: &StoreConfig, shutdown: &Shutdown) -> Result<StoreReport> {
    // One deadline for the whole run, etcd-manager meta file included.
    let deadline = Deadline::after(cfg.deadline);
    let mut named = None;
    let meta = match &cfg.etcd_manager {
        Some(backup) => {
            let (client, _) = cfg.remote.connect(&cfg.key, &deadline, shutdown).await?;
            let info = crate::formats::etcd_manager::new_backup_info(
                client.as_ref(),
                backup.unix_secs,
                backup.etcd_version.as_deref(),
                backup.member_count,
            )
            .await?;
            // The name is picked now, against what the store holds: another
            // store in the same second must not get the same one.
            let in_use = crate::formats::etcd_manager::names_in_use(client.as_ref()).await?;
            let name = crate::formats::etcd_manager::unused_name(&in_use, backup.unix_secs as u64);
            let mut c = cfg.clone();
            c.key = format!("{name}/{}", crate::formats::etcd_manager::DATA_FILE);
            named = Some(c);
            Some((name, client, info))
        }
        None => None,
    };
    let cfg = named.as_ref().unwrap_or(cfg);
    let report = match &cfg.etcd {
        Some((src, compress)) => {
            crate::ops::store::from_etcd::store_from_etcd(cfg, src, *compress, shutdown, &deadline)
                .await?
        }
        None => store_file(cfg, shutdown, &deadline).await?,
    };
    if let Some((name, client, info)) = meta {
        // The meta file last: etcd-manager lists a backup only once it exists.
        crate::formats::etcd_manager::write_backup_info(client.as_ref(), &name, &info).await?;
        tracing::info!(
            backup = %name,
            etcd_version = %info.etcd_version,
            "etcd-manager backup listed"
        );
    }
    Ok(report)
}

/// Uploads `cfg.file`; see the module documentation.
async fn store_file(
    cfg: &StoreConfig,
    shutdown: &Shutdown,
    deadline: &Deadline,
) -> Result<StoreReport> {
    let started = Instant::now();
    let run_started = SystemTime::now();
    let location = cfg.remote.describe(&cfg.key);
    let before = file_state(&cfg.file)?;
    if before.len == 0 {
        return Err(Error::Data(format!(
            "snapshot file {} is empty",
            cfg.file.display()
        )));
    }
    // Encrypted: the verified ciphertext in a locked temporary file (beside the
    // destination in a local directory, to be renamed there) is what is stored.
    let mut encrypted = match &cfg.encrypt {
        Some(recipients) => {
            let beside = match &cfg.remote {
                Remote::Local { root } => (root.join(&cfg.key), "upload"),
                _ => (cfg.file.clone(), "encrypt"),
            };
            let e =
                encrypt::encrypt_file(&cfg.file, before, recipients, beside, shutdown, deadline)
                    .await?;
            Some(e)
        }
        None => None,
    };
    let ciphertext;
    let (cfg, before) = match &encrypted {
        Some(e) => {
            ciphertext = StoreConfig {
                file: e.temp.path.clone(),
                ..cfg.clone()
            };
            (&ciphertext, file_state(&e.temp.path)?)
        }
        None => (cfg, before),
    };
    let size = before.len;
    let part_size = part_size_for(size, cfg.transfer.part_size as u64);
    let (client, path, target) = cfg.remote.connect_put(&cfg.key, deadline, shutdown).await?;
    let target = target.map(|t| {
        let t = t
            .with_cluster(cfg.cluster.clone())
            .with_metadata(&encryption_metadata(cfg.encrypt.as_ref()));
        // An etcd-manager backup name is picked free; a writer that takes it
        // in the same moment must not be overwritten.
        if cfg.etcd_manager.is_some() {
            t.create_only()
        } else {
            t
        }
    });
    if let Some(target) = &target {
        abort_stale(target, run_started, shutdown, deadline).await?;
    }
    let keep_meta = cfg.remote.keeps_metadata();

    let (sha256, parts, info) = if let Some(target) = target {
        // S3: requests that stream from the file (put.rs).
        let (sha256, verification) = match &encrypted {
            Some(e) => {
                let info = e.info.clone();
                let sha256 = info.input_sha256.clone().unwrap_or_default();
                (sha256, tokio::spawn(async move { Ok(info) }))
            }
            None => verify::hash_and_verify(&cfg.file, shutdown, deadline).await?,
        };
        if size
            <= cfg
                .transfer
                .single_put_max
                .min(crate::transport::put::MAX_SINGLE_PUT)
        {
            let info = put_streaming(
                cfg,
                &target,
                &sha256,
                verification,
                before,
                shutdown,
                deadline,
            )
            .await?;
            (sha256, 1, info)
        } else {
            let (parts, info) = put_parts_streaming(
                cfg,
                (&target, &client, &path),
                &sha256,
                part_size,
                verification,
                before,
                shutdown,
                deadline,
            )
            .await?;
            (sha256, parts, info)
        }
    } else if let Remote::Local { root } = &cfg.remote {
        if let Some(e) = encrypted.take() {
            // Verified and synced already: renamed into place.
            e.temp.persist(&root.join(&cfg.key))?;
            let sha256 = e.info.input_sha256.clone().unwrap_or_default();
            (sha256, 1, e.info)
        } else {
            let (sha256, info) = store_local(cfg, root, before, shutdown, deadline).await?;
            (sha256, 1, info)
        }
    } else if encrypted.is_some() {
        return Err(Error::Config(
            "ENCRYPT_RECIPIENTS: encryption is supported for S3 and file:// stores".into(),
        ));
    } else if let Remote::Gcs(settings) = &cfg.remote {
        // GCS: one resumable upload, completed by its held-back last chunk.
        gcs::store_resumable(cfg, settings, before, part_size, shutdown, deadline).await?
    } else {
        // Any other store: object_store's multipart upload, through its traits.
        generic::store_multipart(cfg, (&client, &path), before, part_size, shutdown, deadline)
            .await?
    };

    confirm(
        &client,
        &path,
        &location,
        size,
        keep_meta.then_some(sha256.as_str()),
        deadline,
    )
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    let report = StoreReport {
        location,
        bytes: size,
        sha256,
        sha256_recorded: keep_meta,
        parts,
        snapshot: info,
        seconds,
    };
    tracing::info!(
        key = %cfg.key,
        location = %report.location,
        bytes = report.bytes,
        sha256 = %report.sha256,
        parts = report.parts,
        seconds = crate::base::progress::round_to(seconds, 3),
        mib_per_s = crate::base::progress::round_to(mib_per_s(size, seconds), 1),
        "stored"
    );
    Ok(report)
}

/// The part size actually used: the configured one, grown when the file would
/// need more than S3's 10,000 parts.
fn part_size_for(size: u64, configured: u64) -> u64 {
    let needed = size.div_ceil(MAX_PARTS).next_multiple_of(1 << 20);
    configured.max(needed)
}

fn file_state(path: &Path) -> Result<FileState> {
    use std::os::unix::fs::MetadataExt;
    let meta =
        std::fs::metadata(path).map_err(|e| Error::io(path, "cannot read snapshot file", e))?;
    if !meta.is_file() {
        return Err(Error::io(
            path,
            "snapshot file is not a regular file",
            std::io::Error::other("not a file"),
        ));
    }
    Ok(FileState {
        len: meta.len(),
        modified: meta.modified().ok(),
        changed: (meta.ctime(), meta.ctime_nsec()),
        inode: (meta.dev(), meta.ino()),
    })
}

/// A local directory (`file://`): the file is copied into a locked temporary
/// file beside the destination while it is hashed and verified, synced, and
/// renamed into place only when verification passed and the file did not change.
/// A killed store's temporary file is removed by the next store to the key; one
/// another live store holds is left alone (atomic::sweep).
async fn store_local(
    cfg: &StoreConfig,
    root: &Path,
    before: FileState,
    shutdown: &Shutdown,
    deadline: &Deadline,
) -> Result<(String, SnapshotInfo)> {
    let (src, dest) = (cfg.file.clone(), root.join(&cfg.key));
    let (stop, limit) = (shutdown.clone(), *deadline);
    tokio::task::spawn_blocking(move || {
        crate::base::fs::sweep(&dest, &["upload"]);
        let (temp, file) = crate::base::fs::TempFile::beside(&dest, "upload")?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let mut input = std::fs::File::open(&src)
            .map_err(|e| Error::io(&src, "cannot open snapshot file", e))?;
        let mut v = snapshot::Verifier::new(std::io::sink(), true);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            limit.check(&stop, "storing the snapshot")?;
            let n = std::io::Read::read(&mut input, &mut buf)
                .map_err(|e| Error::io(&src, "cannot read snapshot file", e))?;
            if n == 0 {
                break;
            }
            v.update(&buf[..n])
                .map_err(|e| e.about(format_args!("snapshot file {}", src.display())))?;
            std::io::Write::write_all(&mut out, &buf[..n])
                .map_err(|e| Error::io(&dest, "cannot write the stored object", e))?;
        }
        let (info, _) = v
            .finish()
            .map_err(|e| e.about(format_args!("snapshot file {}", src.display())))?;
        unchanged(&src, before, &info)?;
        crate::base::fs::flush_sync(out, &dest)?;
        limit.check(&stop, "storing the snapshot")?;
        temp.persist(&dest)?;
        let sha256 = info.input_sha256.clone().unwrap_or_default();
        Ok((sha256, info))
    })
    .await
    .map_err(|e| Error::Other(format!("storing task failed: {e}")))?
}

/// S3, up to `SINGLE_PUT_MAX`: one streaming PUT (`put.rs`) whose last chunk
/// waits for `verification` and for the file to be seen unchanged.
#[allow(clippy::too_many_arguments)]
async fn put_streaming(
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
async fn abort_stale(
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
async fn put_parts_streaming(
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

/// What tells a file changed under us. Size and mtime alone miss a rewrite in
/// place whose mtime was put back (`touch -r`, `cp -p`); the inode change time
/// cannot be set back by a user, and the inode number catches a file replaced by
/// a rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileState {
    len: u64,
    modified: Option<SystemTime>,
    changed: (i64, i64),
    inode: (u64, u64),
}

fn changed(file: &Path) -> Error {
    Error::Data(format!(
        "snapshot file {} changed while it was being uploaded",
        file.display()
    ))
}

/// The outcome of `verification` of `file`, which must still be as it was `before`.
async fn verified(
    verification: tokio::task::JoinHandle<Result<SnapshotInfo>>,
    file: &Path,
    before: FileState,
) -> Result<SnapshotInfo> {
    let info = verification
        .await
        .map_err(|e| Error::Other(format!("verification task failed: {e}")))?
        .map_err(|e| e.about(format_args!("snapshot file {}", file.display())))?;
    unchanged(file, before, &info)?;
    Ok(info)
}

/// Whether `file` still is as it was `before`, and verification read all of it.
fn unchanged(file: &Path, before: FileState, info: &SnapshotInfo) -> Result<()> {
    if file_state(file)? != before || info.input_bytes != before.len {
        return Err(changed(file));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_size_grows_past_ten_thousand_parts() {
        let m = 1u64 << 20;
        assert_eq!(part_size_for(100 * m, 16 * m), 16 * m);
        assert_eq!(part_size_for(160_000 * m, 16 * m), 16 * m);
        let big = 200_000 * m;
        let grown = part_size_for(big, 16 * m);
        assert!(big.div_ceil(grown) <= MAX_PARTS);
        assert_eq!(grown % m, 0);
    }

    #[test]
    fn a_rewrite_in_place_with_size_and_mtime_put_back_is_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("snapshot.db.gz");
        std::fs::write(&file, b"first bytes").unwrap();
        let before = file_state(&file).unwrap();
        let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
        // The change time has a clock tick's resolution: rewrite until it moves,
        // as a real writer a moment later would (bounded; each pass re-checks).
        let mut now = before;
        for _ in 0..100_000 {
            std::fs::write(&file, b"other bytes").unwrap();
            std::fs::File::options()
                .write(true)
                .open(&file)
                .unwrap()
                .set_modified(mtime)
                .unwrap();
            now = file_state(&file).unwrap();
            if now.changed != before.changed {
                break;
            }
        }
        assert_eq!((now.len, now.modified), (before.len, before.modified));
        assert_ne!(now, before, "same size and mtime, other bytes: a change");
        let info = SnapshotInfo {
            gzip: true,
            input_bytes: before.len,
            snapshot_bytes: 0,
            input_sha256: None,
            has_trailer: true,
        };
        let err = unchanged(&file, before, &info).unwrap_err();
        assert_eq!(err.exit_code(), 65);
    }
}
