//! gzip as snapjob writes it: independent members (RFC 1952 §2.2: a gzip file is
//! a series of members), one per [`BLOCK`] of the snapshot, each compressed on its
//! own (pigz `--independent` style), so they are compressed and inflated on all
//! cores. The file stays one standard `.gz`: gunzip, Go's `compress/gzip` (and so
//! KKP's etcd-launcher) and Python's `gzip` read it as one stream.
//!
//! The member index is in the stream itself, not in object metadata: each
//! member's header carries an extra field (FEXTRA, RFC 1952 §2.3.1.1, as BGZF
//! does) with subfield `SJ` holding the member's whole length and its raw size,
//! so a reader finds the next member without inflating this one. A 1 GiB snapshot
//! has 1024 members; a list of their lengths would not fit S3's 2 KiB of user
//! metadata, and a file written by `snapshot` has no metadata at all. Readers that
//! do not know `SJ` skip it (the extra field is for that).
//!
//! Header (24 bytes): `1f 8b 08 04` (deflate, FEXTRA), MTIME 0, XFL, OS 255,
//! XLEN 12, `S J`, LEN 8, member length (u32 LE, header and trailer included),
//! raw size (u32 LE). Then raw deflate, CRC-32 and ISIZE as in any member.

/// Raw bytes per member. Small enough that a few in flight per thread cost
/// little memory, large enough that resetting the 32 KiB window costs well under
/// 1% of the size (benches/RESULTS.md).
pub const BLOCK: usize = 1 << 20;
/// Length of the header written here.
pub const HEADER: usize = 24;
/// The largest member the parallel reader takes (a larger one, or one whose
/// header says so, is read as one stream): raw data that does not compress
/// grows by a few bytes per 16 KiB stored block.
pub const MAX_MEMBER: usize = BLOCK + BLOCK / 64 + 1024;

/// What a member's header says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Bytes of the header (where the deflate data starts).
    pub header: usize,
    /// Bytes of the whole member: header, deflate data, CRC-32 and ISIZE.
    pub len: usize,
    /// Bytes it inflates to.
    pub raw: usize,
}

/// What [`parse_header`] found at the start of `bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// Too few bytes to tell.
    Short,
    /// A member with an `SJ` index entry within the bounds taken.
    Indexed(Member),
    /// Anything else (another writer's member, corrupt bytes, a member too large):
    /// read as one stream from here.
    Other,
}

/// Reads the member header at the start of `bytes`. Only a header of the shape
/// written here (FEXTRA alone) with an `SJ` subfield is [`Header::Indexed`]; the
/// lengths it gives are checked against each other and [`MAX_MEMBER`], not
/// trusted: a wrong one makes the member fail to inflate, and the reader falls
/// back to one stream.
pub fn parse_header(bytes: &[u8]) -> Header {
    const FIXED: usize = 12;
    if bytes.len() < FIXED {
        // A prefix that cannot be ours says so at once.
        let ours = [0x1f, 0x8b, 8, 4];
        let n = bytes.len().min(4);
        return if bytes[..n] == ours[..n] {
            Header::Short
        } else {
            Header::Other
        };
    }
    if bytes[..4] != [0x1f, 0x8b, 8, 4] {
        return Header::Other;
    }
    let xlen = usize::from(u16::from_le_bytes([bytes[10], bytes[11]]));
    let header = FIXED + xlen;
    if bytes.len() < header {
        return Header::Short;
    }
    let mut extra = &bytes[FIXED..header];
    while extra.len() >= 4 {
        let len = usize::from(u16::from_le_bytes([extra[2], extra[3]]));
        let Some(data) = extra.get(4..4 + len) else {
            return Header::Other;
        };
        if extra[..2] == *b"SJ" && len == 8 {
            let total = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
            let raw = u32::from_le_bytes([data[4], data[5], data[6], data[7]]) as usize;
            // Header, at least an empty deflate block (2 bytes), trailer.
            if total < header + 2 + 8 || total > MAX_MEMBER || raw > BLOCK {
                return Header::Other;
            }
            return Header::Indexed(Member {
                header,
                len: total,
                raw,
            });
        }
        extra = &extra[4 + len..];
    }
    Header::Other
}

/// The gzip XFL byte for `level`, as zlib and flate2 write it.
fn xfl(level: u32) -> u8 {
    match level {
        9.. => 2,
        0 | 1 => 4,
        _ => 0,
    }
}

/// Compresses `raw` (at most [`BLOCK`] bytes) into one member with its `SJ` entry.
pub fn encode_member(raw: &[u8], level: u32) -> std::io::Result<Vec<u8>> {
    encode_member_into(raw, level, Vec::new())
}

/// [`encode_member`] into `out`'s allocation (its bytes are replaced), so a
/// writer of many members reuses a few buffers instead of one fresh one each.
pub fn encode_member_into(raw: &[u8], level: u32, mut out: Vec<u8>) -> std::io::Result<Vec<u8>> {
    out.clear();
    out.reserve(HEADER + raw.len() / 3 + 64);
    out.extend_from_slice(&[0x1f, 0x8b, 8, 4, 0, 0, 0, 0, xfl(level), 255, 12, 0]);
    out.extend_from_slice(b"SJ\x08\x00");
    out.extend_from_slice(&[0; 8]); // lengths, filled in below
    deflate_into(raw, level, &mut out)?;
    let mut crc = flate2::Crc::new();
    crc.update(raw);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(raw.len() as u32).to_le_bytes());
    let total = u32::try_from(out.len()).map_err(std::io::Error::other)?;
    out[16..20].copy_from_slice(&total.to_le_bytes());
    out[20..24].copy_from_slice(&(raw.len() as u32).to_le_bytes());
    Ok(out)
}

thread_local! {
    /// This thread's deflate state at its level, reset from member to member
    /// rather than allocated and freed each time (zlib-rs's state is several
    /// blocks of 64-128 KiB; freed, they stayed in glibc's heap: issue 20).
    static DEFLATE: std::cell::RefCell<Option<(u32, flate2::Compress)>> =
        const { std::cell::RefCell::new(None) };
}

/// Appends `raw` deflated (raw deflate, no zlib header) to `out`.
fn deflate_into(raw: &[u8], level: u32, out: &mut Vec<u8>) -> std::io::Result<()> {
    DEFLATE.with_borrow_mut(|slot| {
        let mut d = match slot.take() {
            Some((kept, mut d)) if kept == level => {
                d.reset();
                d
            }
            _ => flate2::Compress::new(flate2::Compression::new(level.min(9)), false),
        };
        let start = d.total_in();
        loop {
            let used = usize::try_from(d.total_in() - start).map_err(std::io::Error::other)?;
            if out.capacity() - out.len() < 64 * 1024 {
                out.reserve(256 * 1024);
            }
            let status = d
                .compress_vec(&raw[used..], out, flate2::FlushCompress::Finish)
                .map_err(std::io::Error::other)?;
            if status == flate2::Status::StreamEnd {
                break;
            }
        }
        *slot = Some((level, d));
        Ok(())
    })
}

/// Inflates one whole member that [`parse_header`] described; the error says
/// why it is not what its header claims (the reader then falls back to one
/// stream, which finds any real corruption itself).
pub fn inflate_member(member: &[u8], m: Member) -> Result<Vec<u8>, &'static str> {
    if member.len() != m.len || m.len < m.header + 8 {
        return Err("length");
    }
    let body = &member[m.header..m.len - 8];
    let mut out = Vec::with_capacity(m.raw);
    let mut d = flate2::Decompress::new(false);
    let status = d
        .decompress_vec(body, &mut out, flate2::FlushDecompress::Finish)
        .map_err(|_| "deflate data")?;
    if status != flate2::Status::StreamEnd || d.total_in() != body.len() as u64 {
        return Err("deflate end");
    }
    if out.len() != m.raw {
        return Err("raw size");
    }
    let trailer = &member[m.len - 8..];
    let mut crc = flate2::Crc::new();
    crc.update(&out);
    if trailer[..4] != crc.sum().to_le_bytes() || trailer[4..] != (m.raw as u32).to_le_bytes() {
        return Err("CRC-32 or ISIZE");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn members_are_standard_gzip_and_carry_their_lengths() {
        let a = b"first block of the snapshot ".repeat(500);
        let b = b"second".to_vec();
        let mut gz = encode_member(&a, 3).unwrap();
        let first = gz.len();
        gz.extend(encode_member(&b, 3).unwrap());
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(gz.as_slice())
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, [a.clone(), b.clone()].concat());
        let Header::Indexed(m) = parse_header(&gz) else {
            panic!("indexed")
        };
        assert_eq!((m.header, m.len, m.raw), (HEADER, first, a.len()));
        assert_eq!(inflate_member(&gz[..first], m).unwrap(), a);
        let Header::Indexed(m2) = parse_header(&gz[first..]) else {
            panic!("indexed")
        };
        assert_eq!(inflate_member(&gz[first..], m2).unwrap(), b);
        for n in 0..HEADER {
            assert_eq!(parse_header(&gz[..n]), Header::Short, "{n} bytes");
        }
    }

    #[test]
    fn a_wrong_index_entry_fails_the_member_never_misreads_it() {
        let a = b"some snapshot bytes ".repeat(1000);
        let gz = encode_member(&a, 6).unwrap();
        let Header::Indexed(m) = parse_header(&gz) else {
            panic!()
        };
        let long = [gz.clone(), encode_member(b"x", 6).unwrap()].concat();
        let wrong = [
            Member {
                len: m.len - 1,
                ..m
            },
            Member {
                len: m.len + 3,
                ..m
            },
            Member {
                raw: m.raw - 1,
                ..m
            },
            Member {
                raw: m.raw + 1,
                ..m
            },
        ];
        for w in wrong {
            assert!(inflate_member(&long[..w.len], w).is_err(), "{w:?}");
        }
        let mut bad = gz.clone();
        bad[gz.len() - 6] ^= 1; // the CRC
        assert_eq!(inflate_member(&bad, m), Err("CRC-32 or ISIZE"));
        // Not ours: plain gzip, garbage, lengths out of bounds.
        let mut plain = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        plain.write_all(&a).unwrap();
        assert_eq!(parse_header(&plain.finish().unwrap()), Header::Other);
        assert_eq!(parse_header(b"not gzip at all"), Header::Other);
        let mut huge = gz.clone();
        huge[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse_header(&huge), Header::Other);
        let mut tiny = gz;
        tiny[16..20].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(parse_header(&tiny), Header::Other);
    }
}
