//! Pre-flight: the room a restore needs, checked before it writes (74 naming the
//! need and the free space, crate::base::space).

use std::path::Path;

use crate::base::error::Result;
use crate::base::space::ensure_room;
use crate::formats::datadir::{DataDirSpec, wal};
use crate::formats::snapshot::SnapshotInfo;

/// Before a download: the object lands beside `dest`
/// (the output, or the data dir) at its full size; a gzip object's inflated
/// snapshot needs more, known only as it inflates.
pub(crate) fn for_download(dest: &Path, object_bytes: u64) -> Result<()> {
    ensure_room(&[(dest, "the downloaded backup", object_bytes)])
}

/// Before a local snapshot file is verified into a file beside `dest`: at
/// least its size (a gzip one inflates to more, known only as it inflates; a
/// pipe's size is unknown and not checked).
pub(crate) fn for_local_copy(dest: &Path, src: &Path) -> Result<()> {
    let bytes = std::fs::metadata(src)
        .ok()
        .filter(|m| m.is_file())
        .map_or(0, |m| m.len());
    ensure_room(&[(dest, "the restored snapshot", bytes)])
}

/// Before the member is built: its db (the snapshot less its trailer) in the
/// data dir, and the first WAL file (etcd preallocates 64 MB) in the WAL dir.
pub(crate) fn for_member(
    spec: &DataDirSpec,
    snapshot: &Path,
    info: Option<&SnapshotInfo>,
) -> Result<()> {
    let db = match info {
        Some(i) => i.snapshot_bytes - if i.has_trailer { 32 } else { 0 },
        // A local raw file read where it is (a gzip one: at least its size).
        None => std::fs::metadata(snapshot).map_or(0, |m| m.len()),
    };
    let wal_dir = spec.wal_dir.as_deref().unwrap_or(&spec.data_dir);
    ensure_room(&[
        (&spec.data_dir, "the member's db", db),
        (wal_dir, "the member's WAL", wal::SEGMENT_BYTES),
    ])
}
