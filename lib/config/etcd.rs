//! Configuration of snapshots taken from a live etcd (`store --from-etcd`, `snapshot`).

use std::path::PathBuf;
use std::time::Duration;

use super::{DEFAULT_SNAPSHOT_FILE, deadline, parse_count, parse_duration, progress};
use crate::base::error::{Error, Result};
use crate::base::settings::Inputs;
use crate::formats::compress::Compress;
use crate::transport::etcd::EtcdSource;

/// Default gzip level for snapshots taken from etcd (see benches/RESULTS.md).
pub const DEFAULT_GZIP_LEVEL: u32 = 3;
/// The most threads `COMPRESS_THREADS` takes: memory grows with them (about
/// 2 MiB each, crate::formats::compress::Members).
pub const MAX_COMPRESS_THREADS: usize = 64;

/// Configuration of `snapshot`: a live etcd's snapshot to a local file.
#[derive(Debug, Clone)]
pub struct SnapshotConfig {
    /// The etcd to snapshot.
    pub source: EtcdSource,
    /// Where to write it (atomically).
    pub file: PathBuf,
    /// Compression.
    pub compress: Compress,
    /// Internal time budget.
    pub deadline: Duration,
    /// Interval of progress lines on long transfers.
    pub progress: Duration,
    /// Encrypt the file to these age recipients.
    pub encrypt: Option<crate::formats::encrypt::Recipients>,
}

impl SnapshotConfig {
    /// Validates the inputs of `snapshot`.
    pub fn from_inputs(i: &Inputs) -> Result<Self> {
        let (source, compress) = etcd_settings(i)?;
        Ok(SnapshotConfig {
            source,
            file: PathBuf::from(i.snapshot_file.as_deref().unwrap_or(DEFAULT_SNAPSHOT_FILE)),
            compress,
            encrypt: super::recipients(i)?,
            deadline: deadline(i, Duration::from_secs(110))?,
            progress: progress(i)?,
        })
    }
}

/// The etcd connection and compression settings.
pub fn etcd_settings(i: &Inputs) -> Result<(EtcdSource, Compress)> {
    let endpoints: Vec<String> = i
        .etcd_endpoints
        .as_deref()
        .ok_or_else(|| Error::Config("ETCD_ENDPOINTS is not set (--etcd-endpoints)".into()))?
        .split(',')
        .map(|e| e.trim().trim_end_matches('/').to_string())
        .filter(|e| !e.is_empty())
        .collect();
    for e in &endpoints {
        if !(e.starts_with("http://") || e.starts_with("https://")) {
            return Err(Error::Config(format!(
                "ETCD_ENDPOINTS: {e:?} must start with http:// or https://"
            )));
        }
    }
    if endpoints.is_empty() {
        return Err(Error::Config("ETCD_ENDPOINTS is empty".into()));
    }
    let file = |v: &Option<String>| v.as_deref().map(PathBuf::from);
    let level = match &i.compress_level {
        Some(raw) => parse_count(raw, "COMPRESS_LEVEL", 1, 9)? as u32,
        None => DEFAULT_GZIP_LEVEL,
    };
    let threads = match &i.compress_threads {
        Some(raw) => parse_count(raw, "COMPRESS_THREADS", 1, MAX_COMPRESS_THREADS)?,
        None => crate::base::pool::cpus().min(MAX_COMPRESS_THREADS),
    };
    let compress = match i.compress.as_deref() {
        None | Some("gzip") => Compress::Gzip { level, threads },
        Some("none") => Compress::None,
        Some(other) => {
            return Err(Error::Config(format!(
                "COMPRESS={other:?} must be gzip or none"
            )));
        }
    };
    Ok((
        EtcdSource {
            endpoints,
            ca_file: file(&i.etcd_ca_file),
            cert_file: file(&i.etcd_client_cert_file),
            key_file: file(&i.etcd_client_key_file),
            dial_timeout: match &i.etcd_dial_timeout {
                Some(raw) => parse_duration(raw, "ETCD_DIAL_TIMEOUT")?,
                None => Duration::from_secs(5),
            },
            stream_timeout: match &i.etcd_stream_timeout {
                Some(raw) => parse_duration(raw, "ETCD_STREAM_TIMEOUT")?,
                None => Duration::from_secs(30),
            },
        },
        compress,
    ))
}
