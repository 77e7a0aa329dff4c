//! The member's `HashKV` recorded with the object (`store --from-etcd`), compared
//! with the downloaded snapshot's before anything is put in place: one more walk
//! of the db (crate::formats::etcddb), only when there is a record.

use std::path::Path;

use crate::base::cancel::{Deadline, Shutdown};
use crate::base::error::{Error, Result};
use crate::formats::etcddb::{
    self,
    recorded::{self, Compared, Recorded},
};
use crate::formats::snapshot::SnapshotInfo;

/// Compares `rec` (when there is one) with the raw snapshot at `snapshot`; a
/// mismatch is a data error (65) naming both values and `location`.
pub(crate) async fn compare(
    rec: Option<Recorded>,
    snapshot: &Path,
    info: &SnapshotInfo,
    location: &str,
    (shutdown, deadline): (&Shutdown, &Deadline),
) -> Result<bool> {
    let Some(rec) = rec else {
        tracing::info!(location = %location,
            "no member HashKV recorded with the backup (s3cmd uploads, older backups): not compared");
        return Ok(false);
    };
    let len = info.snapshot_bytes - if info.has_trailer { 32 } else { 0 };
    let (path, d, s) = (snapshot.to_path_buf(), *deadline, shutdown.clone());
    let (facts, at) = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path)
            .map_err(|e| Error::io(&path, "cannot open the snapshot", e))?;
        etcddb::check_at(&file, len, Some(rec.revision), &|| {
            d.check(&s, "checking the db")
        })
    })
    .await
    .map_err(|e| Error::Other(format!("check task failed: {e}")))?
    .map_err(|e| e.about(location))?;
    match recorded::compare(&rec, &facts, at).map_err(|e| e.about(location))? {
        Compared::Equal => {
            tracing::info!(location = %location, revision = rec.revision, hash_kv = rec.hash,
                "the snapshot's HashKV equals the member's recorded answer");
            Ok(true)
        }
        Compared::NotComparable(why) => {
            tracing::warn!(location = %location, "the recorded HashKV was not compared: {why}");
            Ok(false)
        }
    }
}
