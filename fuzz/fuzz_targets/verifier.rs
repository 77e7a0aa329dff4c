//! The streaming snapshot verifier on arbitrary input, cut into chunks of a size
//! taken from the first byte: it must return Ok or a data error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapjob::snapshot::Verifier;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else { return };
    let mut v = Verifier::new(std::io::sink(), true);
    for piece in rest.chunks(usize::from(chunk).max(1)) {
        if v.update(piece).is_err() {
            return;
        }
    }
    if let Ok((info, _)) = v.finish() {
        assert_eq!(info.input_bytes, rest.len() as u64);
    }
});
