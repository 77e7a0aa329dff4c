//! The streaming snapshot verifier on arbitrary input, cut into chunks of a size
//! taken from the first byte: it must return Ok or a data error, never panic. Any
//! other error class (the sink here cannot fail) is a misclassification and
//! fails the run, as does an Ok whose counts are not the input's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use snapjob::base::error::{Error, ErrorClass};
use snapjob::formats::snapshot::Verifier;

/// Panics unless `e` is a data error: corrupt input may give nothing else.
fn data_error(e: Error, at: &str) {
    assert_eq!(e.class(), ErrorClass::Data, "{at}: {e:?}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let mut v = Verifier::new(std::io::sink(), true);
    for piece in rest.chunks(usize::from(chunk).max(1)) {
        if let Err(e) = v.update(piece) {
            return data_error(e, "update");
        }
    }
    match v.finish() {
        Ok((info, _)) => {
            assert_eq!(info.input_bytes, rest.len() as u64);
            if !info.gzip {
                assert_eq!(info.snapshot_bytes, rest.len() as u64);
            }
        }
        Err(e) => data_error(e, "finish"),
    }
});
