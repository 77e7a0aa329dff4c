//! `restore --before TIME`: the newest of this cluster's backups at or before a
//! time, found with the shared listing (crate::transport::listing), as
//! `verify --latest` finds its backups.

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
