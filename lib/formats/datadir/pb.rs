//! The few protobuf messages a restore writes, encoded by hand the way etcd's
//! gogo-generated (proto2) code does: fields in ascending order, non-nullable
//! zero values emitted, repeated `uint64` not packed. Hand code gives bytes
//! identical to etcd's (docs/ETCD-RESTORE.md §2.4-2.5); a proto3 library would not.

/// Appends a base-128 varint.
pub fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends field `n` as a varint (wire type 0).
pub fn uint(out: &mut Vec<u8>, field: u32, v: u64) {
    varint(out, u64::from(field) << 3);
    varint(out, v);
}

/// Appends field `n` as length-delimited bytes (wire type 2).
pub fn bytes(out: &mut Vec<u8>, field: u32, data: &[u8]) {
    varint(out, (u64::from(field) << 3) | 2);
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

/// `raftpb.ConfState{voters…, auto_leave=false}`: one tag per voter, then field 5.
pub fn conf_state(voters: &[u64]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in voters {
        uint(&mut out, 1, *v);
    }
    uint(&mut out, 5, 0);
    out
}

/// `raftpb.ConfChange{ID=0, Type=AddNode, NodeID, Context}`.
pub fn conf_change_add(node_id: u64, context: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    uint(&mut out, 1, 0);
    uint(&mut out, 2, 0);
    uint(&mut out, 3, node_id);
    bytes(&mut out, 4, context);
    out
}

/// `raftpb.Entry{Type, Term, Index, Data}`.
pub fn entry(kind: u64, term: u64, index: u64, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    uint(&mut out, 1, kind);
    uint(&mut out, 2, term);
    uint(&mut out, 3, index);
    bytes(&mut out, 4, data);
    out
}

/// `raftpb.HardState{term, vote, commit}`.
pub fn hard_state(term: u64, vote: u64, commit: u64) -> Vec<u8> {
    let mut out = Vec::new();
    uint(&mut out, 1, term);
    uint(&mut out, 2, vote);
    uint(&mut out, 3, commit);
    out
}

/// `etcdserverpb.Metadata{NodeID, ClusterID}`.
pub fn wal_metadata(node_id: u64, cluster_id: u64) -> Vec<u8> {
    let mut out = Vec::new();
    uint(&mut out, 1, node_id);
    uint(&mut out, 2, cluster_id);
    out
}

/// `walpb.Snapshot{index, term, conf_state?}` (conf_state is 3.5+).
pub fn wal_snapshot(index: u64, term: u64, conf_state: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    uint(&mut out, 1, index);
    uint(&mut out, 2, term);
    if let Some(cs) = conf_state {
        bytes(&mut out, 3, cs);
    }
    out
}

/// `walpb.Record{type, crc, data?}`.
pub fn wal_record(kind: u64, crc: u32, data: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    uint(&mut out, 1, kind);
    uint(&mut out, 2, u64::from(crc));
    if let Some(d) = data {
        bytes(&mut out, 3, d);
    }
    out
}

/// `raftpb.Snapshot{data, metadata{conf_state, index, term}}`.
pub fn raft_snapshot(data: &[u8], conf_state: &[u8], index: u64, term: u64) -> Vec<u8> {
    let mut meta = Vec::new();
    bytes(&mut meta, 1, conf_state);
    uint(&mut meta, 2, index);
    uint(&mut meta, 3, term);
    let mut out = Vec::new();
    bytes(&mut out, 1, data);
    bytes(&mut out, 2, &meta);
    out
}

/// `snappb.Snapshot{crc, data}`: the whole `.snap` file.
pub fn snap_file(crc: u32, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    uint(&mut out, 1, u64::from(crc));
    bytes(&mut out, 2, data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        let enc = |v| {
            let mut o = Vec::new();
            varint(&mut o, v);
            o
        };
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(127), [0x7f]);
        assert_eq!(enc(300), [0xac, 0x02]);
        assert_eq!(enc(u64::MAX).len(), 10);
    }

    #[test]
    fn golden_records_from_the_spec() {
        // The crc record of a first WAL file (docs/ETCD-RESTORE.md §2.4, record 1).
        assert_eq!(wal_record(4, 0, None), [0x08, 0x04, 0x10, 0x00]);
        // walpb.Snapshot{index 0, term 0}.
        assert_eq!(wal_snapshot(0, 0, None), [0x08, 0x00, 0x10, 0x00]);
        assert_eq!(conf_state(&[1, 2]), [0x08, 1, 0x08, 2, 0x28, 0]);
        assert_eq!(hard_state(1, 5, 3), [0x08, 1, 0x10, 5, 0x18, 3]);
    }
}
