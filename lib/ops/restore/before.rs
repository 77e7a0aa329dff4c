//! `restore --before TIME`: the newest of this cluster's backups at or before a
//! time, found with the shared listing (crate::transport::listing), as
//! `verify --latest` finds its backups; in a kops etcd-manager store, the
//! newest backup whose name's time is.

use std::sync::Arc;

use object_store::ObjectStore;

use crate::base::cancel::{Deadline, Shutdown};
use crate::base::error::{Error, Result};
use crate::transport::remote::Remote;

/// The key of the newest backup under `prefix` whose metadata names `cluster`
/// and whose time is at or before `before` (Unix seconds); 12 when none is.
pub(crate) async fn pick(
    client: &Arc<dyn ObjectStore>,
    remote: &Remote,
    (prefix, cluster, before): (&str, &str, i64),
    deadline: &Deadline,
    shutdown: &Shutdown,
) -> Result<String> {
    let found = deadline
        .run(shutdown, "listing backups", async {
            crate::transport::listing::backups(client.as_ref(), prefix, Some(cluster), false)
                .await
                .map_err(|e| Error::remote(format!("listing {}", remote.describe(prefix)), e))
        })
        .await?;
    let when = crate::base::time::rfc3339(before.max(0) as u64);
    // Newest first: the first at or before the time.
    let chosen = found
        .iter()
        .find(|l| l.meta.last_modified.timestamp() <= before)
        .ok_or_else(|| {
            Error::NotFound(format!(
                "no backup of cluster {cluster} at or before {when} under {} ({} of its backups, all newer)",
                remote.describe(prefix),
                found.len()
            ))
        })?;
    let key = chosen.meta.location.to_string();
    tracing::info!(key = %key, before = %when,
        time = %crate::base::time::rfc3339(chosen.meta.last_modified.timestamp().max(0) as u64),
        candidates = found.len(), "the newest backup at or before the time");
    Ok(key)
}

/// The name of the newest backup in the kops store `client` (those with a meta
/// file, as etcd-manager lists them) whose name's time is at or before
/// `before`; 12 when none is.
pub(crate) async fn pick_kops(
    client: &Arc<dyn ObjectStore>,
    remote: &Remote,
    before: i64,
    deadline: &Deadline,
    shutdown: &Shutdown,
) -> Result<String> {
    use crate::formats::etcd_manager::{list_backups, name_time};
    let names = deadline
        .run(shutdown, "listing backups", list_backups(client.as_ref()))
        .await?;
    let when = crate::base::time::rfc3339(before.max(0) as u64);
    // Names sort by their time: the last at or before it.
    let chosen = names
        .iter()
        .rev()
        .find(|n| name_time(n).is_some_and(|t| t <= before))
        .ok_or_else(|| {
            Error::NotFound(format!(
                "no backup at or before {when} in the backup store {} ({} backups, all newer)",
                remote.describe(""),
                names.len()
            ))
        })?;
    tracing::info!(backup = %chosen, before = %when, candidates = names.len(),
        "the newest backup at or before the time");
    Ok(chosen.clone())
}
