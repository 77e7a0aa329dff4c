//! The bbolt reader on arbitrary files: open, read the root bucket and every
//! bucket in it. Corrupt input must give a data error, never a panic, a hang, an
//! unbounded allocation, or an error of another class (the file is readable, so
//! anything but Data is a misclassification and fails the run).
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use snapjob::formats::datadir::bolt::Db;
use snapjob::base::error::{Error, ErrorClass};

/// Panics unless `e` is a data error.
fn data_error(e: Error, at: &str) {
    assert_eq!(e.class(), ErrorClass::Data, "{at}: {e:?}");
}

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("snapjob-fuzz-bolt-{}", std::process::id()));
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(data).unwrap();
    drop(f);
    let f = std::fs::File::open(&path).unwrap();
    let db = match Db::open(&f) {
        Ok(db) => db,
        Err(e) => return data_error(e, "open"),
    };
    let root = match db.root_items() {
        Ok(root) => root,
        Err(e) => return data_error(e, "root_items"),
    };
    for item in root.iter().filter(|i| i.bucket) {
        if let Err(e) = db.bucket_items(&item.value) {
            data_error(e, "bucket_items");
        }
    }
});
