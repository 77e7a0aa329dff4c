//! `PART_SIZE`: the size of each part (S3), block (Azure) or chunk (GCS) of an
//! upload, with the default and the limits of the store it goes to.
//!
//! S3 refuses parts under 5 MiB (but the last) and over 5 GiB. Azure blocks have
//! no minimum and a 4000 MiB maximum; object_store's Azure upload holds each
//! block in memory while it is staged, `CONCURRENCY` at once, so az:// defaults
//! to the 4 MiB blocks of Microsoft's SDKs (benches/RESULTS.md, issue 16), and
//! takes down to 1 MiB. GCS keeps S3's rules (its chunks are rounded to 256 KiB);
//! a file store's chunks are read from the file as they are sent, so a larger
//! chunk costs no memory there and saves round trips (one chunk is in flight at
//! a time): a file store to gs:// defaults to 100 MiB chunks, the Python SDK's;
//! a streamed one (`--from-etcd`) and `copy` hold their parts in memory and keep
//! 8 MiB. (A chunk's request is judged by progress, not a timeout:
//! transport/stall.rs.)

use crate::base::error::Result;
use crate::base::settings::Inputs;
use crate::transport::remote::Remote;

/// Default part size (see `benches/RESULTS.md` for the measurement).
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;
/// Default block size of an az:// store: that of Microsoft's SDKs.
pub const AZURE_DEFAULT_PART_SIZE: usize = 4 * 1024 * 1024;
/// S3's limits on parts.
const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
const MAX_PART_SIZE: usize = 5 * 1024 * 1024 * 1024;
/// Smallest block of an az:// store we take (Azure itself has no minimum; a
/// smaller block only adds requests), and Azure's largest block.
const AZURE_MIN_PART_SIZE: usize = 1024 * 1024;
const AZURE_MAX_PART_SIZE: usize = 4000 * 1024 * 1024;

/// Default part size of a streamed store (`--from-etcd`) to S3: S3's smallest
/// part. Its parts are held in memory while in flight, up to `CONCURRENCY + 2` of
/// them, so they are kept small: at most 10,000 parts of 5 MiB, 48.8 GiB stored
/// (benches/RESULTS.md, issue 20). az:// keeps its 4 MiB blocks; gs:// its 8 MiB
/// chunks (one held at a time, sent in order: smaller ones only add round trips).
pub const STREAMED_PART_SIZE: usize = MIN_PART_SIZE;

/// Default chunk of a gs:// store of a file: the Python SDK's. Read from the
/// file as it is sent, so it costs no memory (benches/RESULTS.md, issue 16).
pub const GCS_FILE_CHUNK: usize = 100 * 1024 * 1024;

/// `PART_SIZE` for a store of a file to `to`, or its default.
pub(super) fn file_part_size(i: &Inputs, to: &Remote) -> Result<usize> {
    match (&i.part_size, to) {
        (None, Remote::Gcs(_)) => Ok(GCS_FILE_CHUNK),
        _ => part_size(i, to),
    }
}

/// `PART_SIZE` for a streamed store to `to` (`--from-etcd`), or its default.
pub(super) fn streamed_part_size(i: &Inputs, to: &Remote) -> Result<usize> {
    match (&i.part_size, to) {
        (None, Remote::S3(_)) => Ok(STREAMED_PART_SIZE),
        _ => part_size(i, to),
    }
}

/// `PART_SIZE` for an upload to `to`, or its default.
pub(super) fn part_size(i: &Inputs, to: &Remote) -> Result<usize> {
    let (default, min, max) = match to {
        Remote::Azure(_) => (
            AZURE_DEFAULT_PART_SIZE,
            AZURE_MIN_PART_SIZE,
            AZURE_MAX_PART_SIZE,
        ),
        _ => (DEFAULT_PART_SIZE, MIN_PART_SIZE, MAX_PART_SIZE),
    };
    match &i.part_size {
        Some(raw) => super::parse_size(raw, "PART_SIZE", min, max),
        None => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StoreConfig;
    use crate::config::tests::inputs;

    const AZURITE: &str = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;\
        AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:1234/devstoreaccount1;";

    fn store(pairs: &[(&str, &str)]) -> Result<usize> {
        let mut all = vec![("BACKUP_TO_CREATE", "b")];
        all.extend_from_slice(pairs);
        StoreConfig::from_inputs(&inputs(&all)).map(|c| c.transfer.part_size)
    }

    fn azure(pairs: &[(&str, &str)]) -> Result<usize> {
        let mut all = vec![
            ("STORAGE_URL", "az://backups"),
            ("AZURE_STORAGE_CONNECTION_STRING", AZURITE),
        ];
        all.extend_from_slice(pairs);
        store(&all)
    }

    #[test]
    fn azure_blocks_default_to_4_mib_and_may_be_smaller_than_s3_parts() {
        let m = 1 << 20;
        assert_eq!(azure(&[]).unwrap(), 4 * m);
        assert_eq!(azure(&[("PART_SIZE", "2MiB")]).unwrap(), 2 * m);
        assert_eq!(azure(&[("PART_SIZE", "1M")]).unwrap(), m);
        assert_eq!(azure(&[("PART_SIZE", "4000MiB")]).unwrap(), 4000 * m);
        for bad in ["512KiB", "4001MiB", "5GiB"] {
            let err = azure(&[("PART_SIZE", bad)]).unwrap_err();
            assert_eq!(err.exit_code(), 78, "{bad}");
            assert!(err.to_string().starts_with("PART_SIZE="), "{bad}: {err}");
        }
        // A streamed store (--from-etcd) keeps its 4 MiB blocks too.
        let etcd = [
            ("FROM_ETCD", "true"),
            ("ETCD_ENDPOINTS", "http://127.0.0.1:2379"),
        ];
        assert_eq!(azure(&etcd).unwrap(), 4 * m);
        // S3 keeps its default and its 5 MiB floor.
        assert_eq!(store(&[]).unwrap(), 8 * m);
        assert_eq!(store(&[("PART_SIZE", "5GiB")]).unwrap(), 5 << 30);
        for bad in ["4MiB", "1M"] {
            let err = store(&[("PART_SIZE", bad)]).unwrap_err();
            assert!(err.to_string().starts_with("PART_SIZE="), "{bad}: {err}");
        }
    }

    #[test]
    fn a_streamed_store_defaults_to_5_mib_parts_and_honours_part_size() {
        let m = 1 << 20;
        let etcd = |more: &[(&'static str, &'static str)]| {
            let mut all = vec![
                ("FROM_ETCD", "true"),
                ("ETCD_ENDPOINTS", "http://127.0.0.1:2379"),
            ];
            all.extend_from_slice(more);
            store(&all)
        };
        assert_eq!(etcd(&[]).unwrap(), 5 * m);
        assert_eq!(etcd(&[("STORAGE_URL", "gs://backups")]).unwrap(), 8 * m);
        assert_eq!(etcd(&[("PART_SIZE", "8MiB")]).unwrap(), 8 * m);
        assert_eq!(etcd(&[("PART_SIZE", "64MiB")]).unwrap(), 64 * m);
        let err = etcd(&[("PART_SIZE", "4MiB")]).unwrap_err();
        assert!(err.to_string().starts_with("PART_SIZE="), "{err}");
        // A file's store keeps 8 MiB.
        assert_eq!(store(&[]).unwrap(), 8 * m);
    }

    #[test]
    fn a_gs_store_of_a_file_defaults_to_100_mib_chunks_and_honours_part_size() {
        let m = 1 << 20;
        let gs = |more: &[(&'static str, &'static str)]| {
            let mut all = vec![("STORAGE_URL", "gs://backups")];
            all.extend_from_slice(more);
            store(&all)
        };
        assert_eq!(gs(&[]).unwrap(), 100 * m);
        assert_eq!(gs(&[("PART_SIZE", "8MiB")]).unwrap(), 8 * m);
        let err = gs(&[("PART_SIZE", "4MiB")]).unwrap_err();
        assert!(err.to_string().starts_with("PART_SIZE="), "{err}");
        // S3 and az:// keep theirs.
        assert_eq!(store(&[]).unwrap(), 8 * m);
        assert_eq!(azure(&[]).unwrap(), 4 * m);
    }
}
