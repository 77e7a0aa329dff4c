//! `restore` (download half): fetch a backup, verify it, write the raw snapshot.
//!
//! The object is streamed; a blocking thread hashes the object's bytes, detects
//! gzip by content, decompresses, checks the etcd SHA-256 trailer and writes the
//! raw snapshot (trailer included, so `etcdutl snapshot restore` can check it too)
//! into a temporary file beside the output. Only when the size, the recorded
//! SHA-256 (objects written by `store`; s3cmd's carry none) and the trailer all
//! match is the file fsynced and renamed into place. On any failure the temporary
//! file is removed and an existing output file is left as it was.

use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{Attribute, GetOptions};
use tokio::sync::mpsc;

use crate::cancel::{Deadline, Shutdown};
use crate::config::RestoreConfig;
use crate::error::{Error, Result};
use crate::remote::ClientTuning;
use crate::snapshot::{SnapshotInfo, Verifier};
use crate::store::SHA256_METADATA;

/// What `restore` did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// Where the object came from.
    pub location: String,
    /// The file written.
    pub output: PathBuf,
    /// Whether a recorded SHA-256 was present and matched.
    pub sha256_checked: bool,
    /// What verification found.
    pub snapshot: SnapshotInfo,
    /// Wall time.
    pub seconds: f64,
}

/// Downloads `cfg.key` into `cfg.output`. See the module documentation.
#[tracing::instrument(name = "restore", skip_all, fields(key = %cfg.key))]
pub async fn restore(cfg: &RestoreConfig, shutdown: &Shutdown) -> Result<RestoreReport> {
    let started = Instant::now();
    let deadline = Deadline::after(cfg.deadline);
    let location = cfg.remote.describe(&cfg.key);
    let client = deadline
        .run(
            shutdown,
            "connecting",
            cfg.remote.open(&ClientTuning::for_deadline(cfg.deadline)),
        )
        .await?;
    let path =
        ObjectPath::parse(&cfg.key).map_err(|e| Error::Config(format!("object key: {e}")))?;
    let got = deadline
        .run(shutdown, "starting the download", async {
            client
                .get_opts(&path, GetOptions::default())
                .await
                .map_err(|e| match e {
                    object_store::Error::NotFound { .. } => Error::NotFound(format!(
                        "no backup at {location} (object or bucket missing)"
                    )),
                    e => Error::remote(format!("download of {location}"), e),
                })
        })
        .await?;
    let expected_size = got.meta.size;
    let recorded = got
        .attributes
        .get(&Attribute::Metadata(SHA256_METADATA.into()))
        .map(|v| v.as_ref().to_ascii_lowercase());

    let (temp, file) = TempFile::create(&cfg.output)?;
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let writer = spawn_writer(file, rx, temp.path.clone());
    let streamed = deadline
        .run(shutdown, "downloading", async {
            let mut stream = got.into_stream();
            let mut n = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk =
                    chunk.map_err(|e| Error::remote(format!("download of {location}"), e))?;
                n += chunk.len() as u64;
                if tx.send(chunk).await.is_err() {
                    break; // the writer stopped; its error is reported below
                }
            }
            Ok(n)
        })
        .await;
    drop(tx);
    let written = writer
        .await
        .map_err(|e| Error::Other(format!("verification task failed: {e}")));
    let received = streamed?;
    let info = written??;
    if received != expected_size || info.input_bytes != expected_size {
        return Err(Error::Data(format!(
            "{location}: received {received} bytes, the object has {expected_size}"
        )));
    }
    let actual = info.input_sha256.clone().unwrap_or_default();
    if let Some(want) = &recorded {
        if *want != actual {
            return Err(Error::Data(format!(
                "{location}: SHA-256 {actual} does not match the recorded {want}"
            )));
        }
    }
    temp.persist(&cfg.output)?;
    let report = RestoreReport {
        location,
        output: cfg.output.clone(),
        sha256_checked: recorded.is_some(),
        snapshot: info,
        seconds: started.elapsed().as_secs_f64(),
    };
    tracing::info!(
        location = %report.location,
        output = %report.output.display(),
        object_bytes = report.snapshot.input_bytes,
        snapshot_bytes = report.snapshot.snapshot_bytes,
        gzip = report.snapshot.gzip,
        sha256 = %actual,
        sha256_checked = report.sha256_checked,
        seconds = format_args!("{:.3}", report.seconds),
        "restored"
    );
    Ok(report)
}

/// Verifies the chunks and writes the raw snapshot to `file`, then fsyncs it.
fn spawn_writer(
    file: File,
    mut chunks: mpsc::Receiver<Bytes>,
    path: PathBuf,
) -> tokio::task::JoinHandle<Result<SnapshotInfo>> {
    tokio::task::spawn_blocking(move || {
        let mut v = Verifier::new(BufWriter::with_capacity(1 << 20, file), true);
        while let Some(chunk) = chunks.blocking_recv() {
            v.update(&chunk)?;
        }
        let (info, out) = v.finish()?;
        let file = out
            .into_inner()
            .map_err(|e| Error::io(&path, "cannot write the snapshot", e.into_error()))?;
        file.sync_all()
            .map_err(|e| Error::io(&path, "cannot sync the snapshot", e))?;
        Ok(info)
    })
}

/// A temporary file beside the destination, removed on drop unless persisted.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl TempFile {
    fn create(dest: &Path) -> Result<(TempFile, File)> {
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(&dir, "cannot create output directory", e))?;
        let name = dest
            .file_name()
            .ok_or_else(|| Error::Usage(format!("output {} is not a file name", dest.display())))?;
        let path = dir.join(format!(
            ".{}.snapjob-{}.tmp",
            name.to_string_lossy(),
            std::process::id()
        ));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| Error::io(&path, "cannot create temporary output file", e))?;
        Ok((TempFile { path, keep: false }, file))
    }

    /// Renames into place and fsyncs the directory so the rename is durable.
    fn persist(mut self, dest: &Path) -> Result<()> {
        std::fs::rename(&self.path, dest)
            .map_err(|e| Error::io(dest, "cannot move the snapshot into place", e))?;
        self.keep = true;
        if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| Error::io(dir, "cannot sync output directory", e))?;
        }
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
