//! The gzip member index (an `SJ` entry in each member's header) on arbitrary
//! input: parsing never panics and what it takes stays within its bounds; a
//! member it describes either fails to inflate or inflates to exactly what a
//! standard gzip reader makes of the same bytes.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use snapjob::formats::gzip_members::{BLOCK, Header, MAX_MEMBER, inflate_member, parse_header};

fuzz_target!(|data: &[u8]| {
    let Header::Indexed(m) = parse_header(data) else {
        return;
    };
    assert!(m.header + 10 <= m.len && m.len <= MAX_MEMBER && m.raw <= BLOCK, "{m:?}");
    let Some(member) = data.get(..m.len) else {
        return;
    };
    if let Ok(raw) = inflate_member(member, m) {
        assert_eq!(raw.len(), m.raw);
        let mut peer = Vec::new();
        let mut d = flate2::read::GzDecoder::new(member);
        d.read_to_end(&mut peer).expect("a standard reader takes the member");
        assert!(peer == raw, "the same bytes as a standard reader");
    }
});
