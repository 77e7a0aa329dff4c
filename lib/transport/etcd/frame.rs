//! gRPC framing of the snapshot stream: whole messages (a 5-byte prefix, then the
//! message) taken from the received bytes, capped at `MAX_MESSAGE`, and the
//! `blob` field of each `SnapshotResponse`.

use bytes::{Buf, Bytes, BytesMut};

use super::{MAX_MESSAGE, etcd_error};
use crate::base::error::{ErrorClass, Result};

/// Takes one whole gRPC message (a 5-byte prefix: compressed flag, big-endian
/// length; then the message) from `buf` and returns its blob; `None` until the
/// whole message is there.
pub(super) fn take_message(buf: &mut BytesMut) -> Result<Option<Bytes>> {
    take_frame(buf)?.map(blob_of).transpose()
}

/// Takes one whole gRPC message from `buf`, as it is; `None` until it is all there.
pub(super) fn take_frame(buf: &mut BytesMut) -> Result<Option<Bytes>> {
    if buf.len() < 5 {
        return Ok(None);
    }
    if buf[0] != 0 {
        return Err(etcd_error(
            ErrorClass::Data,
            "etcd sent a compressed gRPC message".into(),
        ));
    }
    let len = u32::from_be_bytes(buf[1..5].try_into().expect("4 bytes")) as usize;
    if len > MAX_MESSAGE {
        return Err(etcd_error(
            ErrorClass::Data,
            format!(
                "etcd announced a gRPC message of {len} bytes, longer than the {} MiB limit",
                MAX_MESSAGE / (1024 * 1024)
            ),
        ));
    }
    if buf.len() < 5 + len {
        return Ok(None);
    }
    buf.advance(5);
    Ok(Some(buf.split_to(len).freeze()))
}

/// The `blob` (field 3) of a `SnapshotResponse`; other fields are skipped.
pub(super) fn blob_of(mut msg: Bytes) -> Result<Bytes> {
    let bad = || {
        etcd_error(
            ErrorClass::Data,
            "etcd sent a malformed SnapshotResponse".into(),
        )
    };
    let mut blob = Bytes::new();
    while msg.has_remaining() {
        let tag = varint(&mut msg).ok_or_else(bad)?;
        match tag & 7 {
            0 => {
                varint(&mut msg).ok_or_else(bad)?;
            }
            2 => {
                let len = varint(&mut msg).ok_or_else(bad)? as usize;
                if len > msg.remaining() {
                    return Err(bad());
                }
                let field = msg.split_to(len);
                if tag >> 3 == 3 {
                    blob = field;
                }
            }
            _ => return Err(bad()),
        }
    }
    Ok(blob)
}

pub(crate) fn varint(b: &mut Bytes) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        if !b.has_remaining() {
            return None;
        }
        let byte = b.get_u8();
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_taken_from_snapshot_responses() {
        // header{} (field 1), remaining_bytes=5 (field 2), blob="abc" (field 3), version="3.6.0" (field 4)
        let msg = [
            0x0a, 0x00, 0x10, 0x05, 0x1a, 0x03, b'a', b'b', b'c', 0x22, 0x05, b'3', b'.', b'6',
            b'.', b'0',
        ];
        assert_eq!(
            blob_of(Bytes::copy_from_slice(&msg)).unwrap(),
            Bytes::from_static(b"abc")
        );
        assert!(
            blob_of(Bytes::from_static(&[0x1a, 0x09, 1])).is_err(),
            "length past the end"
        );
        assert!(
            blob_of(Bytes::from_static(&[0x1d, 0, 0, 0, 0])).is_err(),
            "fixed32 is not used"
        );
    }

    /// The 5-byte prefix of an uncompressed message of `len` bytes.
    fn prefix(len: u32) -> BytesMut {
        let mut b = BytesMut::new();
        b.extend_from_slice(&[0]);
        b.extend_from_slice(&len.to_be_bytes());
        b
    }

    #[test]
    fn a_message_longer_than_the_limit_is_refused_at_its_prefix() {
        // Nothing of the message has arrived yet: the announced length alone is
        // refused, before anything is buffered for it.
        for len in [MAX_MESSAGE as u32 + 1, u32::MAX] {
            let err = take_message(&mut prefix(len)).unwrap_err();
            assert_eq!(err.exit_code(), 65, "{err}");
            assert!(err.to_string().contains("longer than"), "{err}");
        }
        // At the limit it is a message like any other: wait for the rest.
        let mut at_limit = prefix(MAX_MESSAGE as u32);
        assert!(take_message(&mut at_limit).unwrap().is_none());
        // A whole small message is taken.
        let mut small = prefix(5);
        small.extend_from_slice(&[0x1a, 0x03, b'a', b'b', b'c']);
        assert_eq!(
            take_message(&mut small).unwrap(),
            Some(Bytes::from_static(b"abc"))
        );
        assert!(small.is_empty());
    }
}
