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
use std::time::{Instant, SystemTime};

use crate::base::cancel::{Deadline, Shutdown};
use crate::base::error::{Error, Result};
use crate::base::time::mib_per_s;
use crate::config::StoreConfig;
use crate::formats::snapshot::{self, SnapshotInfo};
use crate::transport::object::{confirm, encryption_metadata};
use crate::transport::remote::Remote;

mod encrypt;
mod from_etcd;
mod gcs;
mod generic;
mod s3;
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
        s3::abort_stale(target, run_started, shutdown, deadline).await?;
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
            let info = s3::put_streaming(
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
            let (parts, info) = s3::put_parts_streaming(
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
