//! The bbolt reader on arbitrary files: open, read the root bucket and every
//! bucket in it. Corrupt input must give an error, never a panic, a hang or an
//! unbounded allocation.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use snapjob::datadir::bolt::Db;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("snapjob-fuzz-bolt-{}", std::process::id()));
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(data).unwrap();
    drop(f);
    let f = std::fs::File::open(&path).unwrap();
    let Ok(db) = Db::open(&f) else { return };
    let Ok(root) = db.root_items() else { return };
    for item in root.iter().filter(|i| i.bucket) {
        let _ = db.bucket_items(&item.value);
    }
});
