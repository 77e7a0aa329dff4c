//! The member's own `HashKV`, asked over the snapshot's connection just before the
//! snapshot: `Maintenance/HashKV{revision: 0}` hashes the key space at the
//! member's current revision, and the answer (`HashKVResponse{header{revision},
//! hash, compact_revision, hash_revision (3.6)}`) is what `store` records in the
//! object's metadata. The snapshot that follows holds every revision up to its
//! own, at least this one, so `verify` and `restore` can compute the same hash
//! offline (crate::formats::etcddb) and compare.

use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http_body_util::{BodyExt, Full, Limited};

use super::{accepted, etcd_error, grpc_failure, grpc_request, take_frame, varint};
use crate::base::error::{ErrorClass, Result};

/// What a member answered to `HashKV`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberHash {
    /// The revision hashed (the member's current revision when asked).
    pub revision: i64,
    /// The hash (CRC-32C), as `etcdctl endpoint hashkv` prints it.
    pub hash: u32,
    /// The member's compact revision then (-1 or 0: never compacted).
    pub compact_revision: i64,
}

/// Asks the member for `HashKV` at its current revision, within `limit`. A
/// member that does not answer, or answers with an error, leaves the backup
/// without the record (a warning says why): the snapshot matters more.
pub(crate) async fn ask(
    sender: &mut hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    ep: &str,
    limit: Duration,
) -> Option<MemberHash> {
    match tokio::time::timeout(limit, call(sender, ep)).await {
        Ok(Ok(h)) => {
            tracing::info!(endpoint = %ep, revision = h.revision, hash_kv = h.hash,
                compact_revision = h.compact_revision, "the member's HashKV");
            Some(h)
        }
        Ok(Err(e)) => {
            tracing::warn!(endpoint = %ep, error = %e.chain(), "no HashKV from the member; the backup will not record it");
            None
        }
        Err(_) => {
            tracing::warn!(endpoint = %ep, seconds = limit.as_secs(),
                "no HashKV from the member in time; the backup will not record it");
            None
        }
    }
}

async fn call(
    sender: &mut hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    ep: &str,
) -> Result<MemberHash> {
    // HashKVRequest{revision: 0}: an empty message.
    let request = grpc_request(ep, "HashKV", &[0, 0, 0, 0, 0])?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| etcd_error(ErrorClass::Temporary, format!("etcd {ep}: HashKV: {e}")))?;
    let body = accepted(ep, response)?;
    let got = Limited::new(body, 4096)
        .collect()
        .await
        .map_err(|e| etcd_error(ErrorClass::Temporary, format!("etcd {ep}: HashKV: {e}")))?;
    if let Some(e) = got.trailers().and_then(|t| grpc_failure(ep, t)) {
        return Err(e);
    }
    let mut buf = BytesMut::from(got.to_bytes().as_ref());
    let msg = take_frame(&mut buf)?.ok_or_else(|| malformed(ep))?;
    parse(msg).ok_or_else(|| malformed(ep))
}

fn malformed(ep: &str) -> crate::base::error::Error {
    etcd_error(
        ErrorClass::Data,
        format!("etcd {ep}: a malformed HashKVResponse"),
    )
}

/// Reads a `HashKVResponse`; `None` when it is malformed or has no revision.
fn parse(mut msg: Bytes) -> Option<MemberHash> {
    let (mut header_rev, mut hash_rev) = (0i64, 0i64);
    let (mut hash, mut compact) = (0u32, 0i64);
    while msg.has_remaining() {
        let tag = varint(&mut msg)?;
        match (tag >> 3, tag & 7) {
            (_, 0) => {
                let v = varint(&mut msg)?;
                match tag >> 3 {
                    2 => hash = u32::try_from(v).ok()?,
                    3 => compact = v as i64,
                    4 => hash_rev = v as i64,
                    _ => {}
                }
            }
            (field, 2) => {
                let len = usize::try_from(varint(&mut msg)?).ok()?;
                if len > msg.remaining() {
                    return None;
                }
                let mut inner = msg.split_to(len);
                if field == 1 {
                    // ResponseHeader{cluster_id 1, member_id 2, revision 3, raft_term 4}
                    while inner.has_remaining() {
                        let t = varint(&mut inner)?;
                        if t & 7 != 0 {
                            return None;
                        }
                        let v = varint(&mut inner)?;
                        if t >> 3 == 3 {
                            header_rev = v as i64;
                        }
                    }
                }
            }
            _ => return None,
        }
    }
    // 3.6 says which revision it hashed; 3.4 and 3.5 hash the header's.
    let revision = if hash_rev > 0 { hash_rev } else { header_rev };
    (revision > 0).then_some(MemberHash {
        revision,
        hash,
        compact_revision: compact,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_of_3_5_and_3_6_are_read() {
        // header{cluster_id=1, revision=300}, hash=0xdeadbeef, compact_revision=-1
        let mut msg = vec![0x0a, 0x05, 0x08, 0x01, 0x18, 0xac, 0x02, 0x10];
        msg.extend_from_slice(&[0xef, 0xfd, 0xb6, 0xf5, 0x0d]);
        msg.push(0x18);
        msg.extend_from_slice(&[0xff; 9]);
        msg.push(0x01);
        let got = parse(Bytes::from(msg.clone())).unwrap();
        assert_eq!(
            got,
            MemberHash {
                revision: 300,
                hash: 0xdead_beef,
                compact_revision: -1
            }
        );
        // hash_revision (field 4) wins over the header's.
        msg.extend_from_slice(&[0x20, 0x64]);
        assert_eq!(parse(Bytes::from(msg)).unwrap().revision, 100);
        // No revision at all, a length past the end, a fixed64: none.
        assert_eq!(parse(Bytes::from_static(&[0x10, 0x05])), None);
        assert_eq!(parse(Bytes::from_static(&[0x0a, 0x09, 0x18])), None);
        assert_eq!(parse(Bytes::from_static(&[0x11, 0, 0, 0, 0])), None);
    }
}
