//! The first WAL segment of a restored member and its `.snap` file
//! (docs/ETCD-RESTORE.md §2.4-2.5), byte-identical to `etcdutl snapshot restore`.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use super::cluster::{Cluster, member_json};
use super::pb;
use crate::base::error::{Error, Result};

/// etcd's WAL segment size: the first file is preallocated to this.
pub const SEGMENT_BYTES: u64 = 64 * 1000 * 1000;
/// The WAL file name of the first segment.
pub const WAL_NAME: &str = "0000000000000000-0000000000000000.wal";

const CRC_TYPE: u64 = 4;
const METADATA_TYPE: u64 = 1;
const ENTRY_TYPE: u64 = 2;
const STATE_TYPE: u64 = 3;
const SNAPSHOT_TYPE: u64 = 5;
/// `raftpb.EntryConfChange`.
const ENTRY_CONF_CHANGE: u64 = 1;

/// Which etcd's output to reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// etcdutl 3.5/3.6: the last WAL snapshot record carries the ConfState.
    V35,
    /// etcdctl 3.4: it does not.
    V34,
}

struct WalWriter {
    out: Vec<u8>,
    crc: u32,
}

impl WalWriter {
    fn record(&mut self, kind: u64, data: Option<&[u8]>) {
        if let Some(d) = data {
            self.crc = crc32c::crc32c_append(self.crc, d);
        }
        let rec = pb::wal_record(kind, self.crc, data);
        let len = rec.len() as u64;
        let pad = (8 - len % 8) % 8;
        let mut len_field = len;
        if pad != 0 {
            len_field |= (0x80 | pad) << 56;
        }
        self.out.extend_from_slice(&len_field.to_le_bytes());
        self.out.extend_from_slice(&rec);
        self.out.extend(std::iter::repeat_n(0u8, pad as usize));
    }
}

/// The records of the first WAL segment (without the zero-filled rest).
pub fn wal_records(cluster: &Cluster, flavor: Flavor) -> Vec<u8> {
    let n = cluster.members.len() as u64;
    let mut w = WalWriter {
        out: Vec::new(),
        crc: 0,
    };
    w.record(CRC_TYPE, None);
    w.record(
        METADATA_TYPE,
        Some(&pb::wal_metadata(cluster.local.id, cluster.cluster_id)),
    );
    w.record(SNAPSHOT_TYPE, Some(&pb::wal_snapshot(0, 0, None)));
    for (i, m) in cluster.members.iter().enumerate() {
        let change = pb::conf_change_add(m.id, member_json(m).as_bytes());
        let entry = pb::entry(ENTRY_CONF_CHANGE, 1, i as u64 + 1, &change);
        w.record(ENTRY_TYPE, Some(&entry));
    }
    w.record(
        STATE_TYPE,
        Some(&pb::hard_state(1, cluster.members[0].id, n)),
    );
    let voters: Vec<u64> = cluster.members.iter().map(|m| m.id).collect();
    let cs = pb::conf_state(&voters);
    let conf = (flavor == Flavor::V35).then_some(cs.as_slice());
    w.record(SNAPSHOT_TYPE, Some(&pb::wal_snapshot(n, 1, conf)));
    w.out
}

/// The `.snap` file bytes: `snappb.Snapshot{crc, raftpb.Snapshot{v2 JSON, metadata}}`.
pub fn snap_file(cluster: &Cluster, v2_json: &[u8]) -> Vec<u8> {
    let voters: Vec<u64> = cluster.members.iter().map(|m| m.id).collect();
    let n = cluster.members.len() as u64;
    let raft = pb::raft_snapshot(v2_json, &pb::conf_state(&voters), n, 1);
    pb::snap_file(crc32c::crc32c(&raft), &raft)
}

/// The `.snap` file name for term 1 and index N.
pub fn snap_name(cluster: &Cluster) -> String {
    format!("{:016x}-{:016x}.snap", 1, cluster.members.len())
}

fn io(path: &Path, action: &str) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    let action = action.to_string();
    move |e| Error::io(path, action, e)
}

/// Writes the WAL segment into the directory `wal_dir` (created if missing, which
/// must hold no WAL yet), preallocated and fsynced, and fsyncs the directory. The
/// caller builds it in a staging directory and renames that into place.
pub fn write_wal_dir(wal_dir: &Path, records: &[u8]) -> Result<()> {
    fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(wal_dir)
        .map_err(io(wal_dir, "cannot create WAL dir"))?;
    let path = wal_dir.join(WAL_NAME);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io(&path, "cannot create WAL file"))?;
    preallocate(&f, SEGMENT_BYTES).map_err(io(&path, "cannot preallocate WAL file"))?;
    f.write_all(records)
        .map_err(io(&path, "cannot write WAL"))?;
    f.sync_all().map_err(io(&path, "cannot sync WAL"))?;
    sync_dir(wal_dir)
}

/// Reserves `len` bytes on disk (etcd's WAL is not sparse, so a full disk shows
/// at restore time rather than later), falling back to a plain size change.
fn preallocate(f: &File, len: u64) -> std::io::Result<()> {
    use nix::fcntl::{FallocateFlags, fallocate};
    match fallocate(f, FallocateFlags::empty(), 0, len as i64) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EOPNOTSUPP) => f.set_len(len),
        Err(e) => Err(e.into()),
    }
}

/// Writes `bytes` to a new file `path` with `mode`, fsynced.
pub fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io(path, "cannot create file"))?;
    f.write_all(bytes).map_err(io(path, "cannot write file"))?;
    f.sync_all().map_err(io(path, "cannot sync file"))
}

/// fsyncs a directory so renames and new entries in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir, "cannot sync directory"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_record_is_the_specs_crc_record() {
        let c = Cluster::new(
            "m0",
            "m0=http://127.0.0.1:23793",
            "http://127.0.0.1:23793",
            "restore-token",
        )
        .unwrap();
        let wal = wal_records(&c, Flavor::V35);
        assert_eq!(
            wal[..16],
            [
                0x04, 0, 0, 0, 0, 0, 0, 0x84, 0x08, 0x04, 0x10, 0x00, 0, 0, 0, 0
            ]
        );
        assert_eq!(wal.len() % 8, 0, "records are 8-byte framed");
        assert_ne!(wal_records(&c, Flavor::V34), wal, "3.4 omits the ConfState");
        assert_eq!(snap_name(&c), "0000000000000001-0000000000000001.snap");
    }

    /// Golden bytes written by etcdutl 3.5.1 and etcdctl 3.4.23 for member m1 of a
    /// 3-member loopback cluster (fixtures/README.md says how they were made).
    #[test]
    fn golden_wal_and_snap_match_etcdutl_and_etcdctl() {
        let golden = |name: &str| {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/golden");
            std::fs::read(dir.join(name)).unwrap()
        };
        let c = Cluster::new(
            "m1",
            "m0=http://127.0.0.1:23790,m1=http://127.0.0.1:23791,m2=http://127.0.0.1:23792",
            "http://127.0.0.1:23791",
            "restore-token",
        )
        .unwrap();
        assert_eq!(wal_records(&c, Flavor::V35), golden("restore-m1-v35.wal"));
        assert_eq!(wal_records(&c, Flavor::V34), golden("restore-m1-v34.wal"));
        let snap = snap_file(&c, super::super::v2store::v2_json(&c).as_bytes());
        assert_eq!(snap, golden("restore-m1-v35.snap"));
        assert_eq!(snap, golden("restore-m1-v34.snap"));
        assert_eq!(snap_name(&c), "0000000000000001-0000000000000003.snap");
    }
}
