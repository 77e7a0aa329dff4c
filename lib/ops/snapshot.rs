//! `snapshot`: a live etcd's snapshot written to a local file atomically,
//! verified, compressed and encrypted as asked (the init container's job).

use std::path::PathBuf;
use std::time::Instant;

use crate::base::cancel::{Deadline, Shutdown};
use crate::base::error::Result;
use crate::config::SnapshotConfig;
use crate::transport::etcd::{self, to_file::stream_to_file};

/// What `snapshot` did.
#[derive(Debug, Clone)]
pub struct SnapshotReport {
    /// The file written.
    pub file: PathBuf,
    /// The endpoint the snapshot came from.
    pub endpoint: String,
    /// Raw snapshot bytes (with the trailer).
    pub snapshot_bytes: u64,
    /// Wall time.
    pub seconds: f64,
}

/// Writes a snapshot of `cfg.source` to `cfg.file` atomically, compressed as asked.
#[tracing::instrument(name = "snapshot", skip_all)]
pub async fn snapshot_to_file(cfg: &SnapshotConfig, shutdown: &Shutdown) -> Result<SnapshotReport> {
    let (src, file, compress, progress) =
        (&cfg.source, cfg.file.as_path(), cfg.compress, cfg.progress);
    let started = Instant::now();
    let deadline = Deadline::after(cfg.deadline);
    let mut stream = deadline
        .run(shutdown, "connecting to etcd", etcd::open(src))
        .await?;
    let (info, _) = stream_to_file(
        &mut stream,
        file,
        "tmp",
        (
            crate::formats::pipeline::Stages {
                compress,
                encrypt: cfg.encrypt.clone(),
            },
            progress,
        ),
        shutdown,
        &deadline,
    )
    .await?;
    let report = SnapshotReport {
        file: file.to_path_buf(),
        endpoint: stream.endpoint.clone(),
        snapshot_bytes: info.snapshot_bytes,
        seconds: started.elapsed().as_secs_f64(),
    };
    tracing::info!(
        file = %file.display(),
        endpoint = %report.endpoint,
        snapshot_bytes = report.snapshot_bytes,
        seconds = crate::base::progress::round_to(report.seconds, 3),
        "snapshot written"
    );
    Ok(report)
}
