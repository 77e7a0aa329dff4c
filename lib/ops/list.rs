//! `list`: the inventory of backups under a prefix, newest first, with what each
//! object's metadata records (its cluster, SHA-256, and the member's HashKV at
//! its revision when those were recorded). Reads metadata only: one listing and
//! one HEAD per object.

use serde::Serialize;

use crate::base::cancel::{Deadline, Shutdown};
use crate::base::error::{Error, Result};
use crate::config::ListConfig;
use crate::transport::object::{
    CLUSTER_METADATA, COMPACT_METADATA, HASHKV_METADATA, REVISION_METADATA, SHA256_METADATA,
};

/// One backup in the inventory.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Entry {
    /// Object key.
    pub key: String,
    /// Bytes.
    pub size: u64,
    /// Last modified, RFC 3339 (UTC).
    pub time: String,
    /// Whether a SHA-256 is recorded (then `restore` and `verify` check it).
    pub sha256_recorded: bool,
    /// The cluster recorded by `store`, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The etcd revision recorded with the member's HashKV, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The member's HashKV at `revision`, if recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash_kv: Option<String>,
    /// The compact revision the member reported with it, if recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compact_revision: Option<String>,
}

/// What `list` found.
#[derive(Debug, Clone, Default)]
pub struct ListReport {
    /// Newest first.
    pub entries: Vec<Entry>,
}

/// Lists the backups under `cfg.prefix`, newest first.
#[tracing::instrument(name = "list", skip_all)]
pub async fn list(cfg: &ListConfig, shutdown: &Shutdown) -> Result<ListReport> {
    let deadline = Deadline::after(cfg.deadline);
    let (client, _) = cfg.remote.connect("list", &deadline, shutdown).await?;
    let found = deadline
        .run(shutdown, "listing backups", async {
            crate::transport::listing::backups(client.as_ref(), &cfg.prefix, None, true)
                .await
                .map_err(|e| {
                    Error::remote(format!("listing {}", cfg.remote.describe(&cfg.prefix)), e)
                })
        })
        .await?;
    let entries = found
        .into_iter()
        .map(|l| {
            let get = |name: &str| l.metadata.get(name).cloned();
            Entry {
                key: l.meta.location.to_string(),
                size: l.meta.size,
                time: crate::base::time::rfc3339(l.meta.last_modified.timestamp().max(0) as u64),
                sha256_recorded: l.metadata.contains_key(SHA256_METADATA),
                cluster: get(CLUSTER_METADATA),
                revision: get(REVISION_METADATA),
                hash_kv: get(HASHKV_METADATA),
                compact_revision: get(COMPACT_METADATA),
            }
        })
        .collect();
    Ok(ListReport { entries })
}
