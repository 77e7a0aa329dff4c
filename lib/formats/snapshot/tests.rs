use super::*;

/// A minimal well-formed snapshot: a page with the bbolt magic, padded to
/// 4 KiB pages, plus the SHA-256 trailer.
pub(crate) fn synthetic(pages: usize) -> Vec<u8> {
    let mut db = vec![0u8; pages * 4096];
    db[16..20].copy_from_slice(&BOLT_MAGIC.to_le_bytes());
    for (i, b) in db.iter_mut().enumerate().skip(20) {
        *b = (i % 251) as u8;
    }
    let sum = Sha256::digest(&db);
    db.extend_from_slice(&sum);
    db
}

pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn verify_in_chunks(bytes: &[u8], chunk: usize) -> Result<(SnapshotInfo, Vec<u8>)> {
    let mut v = Verifier::new(Vec::new(), true);
    for c in bytes.chunks(chunk) {
        v.update(c)?;
    }
    v.finish()
}

#[test]
fn raw_and_gzip_pass_in_any_chunking() {
    let raw = synthetic(3);
    let gz = gzip(&raw);
    for chunk in [1, 7, 31, 32, 33, 4096, 1 << 20] {
        let (info, out) = verify_in_chunks(&raw, chunk).unwrap();
        assert!(!info.gzip);
        assert_eq!(out, raw);
        // Derived from the trailer check's state: must still be the whole input's.
        assert_eq!(
            info.input_sha256.unwrap(),
            hex::encode(Sha256::digest(&raw))
        );
        let (info, out) = verify_in_chunks(&gz, chunk).unwrap();
        assert!(info.gzip);
        assert_eq!(out, raw, "chunk {chunk}");
        assert_eq!(info.snapshot_bytes, raw.len() as u64);
        assert_eq!(info.input_bytes, gz.len() as u64);
        assert_eq!(info.input_sha256.unwrap(), hex::encode(Sha256::digest(&gz)));
    }
}

/// Fails every write after `left` bytes.
struct FailingSink {
    left: usize,
}

impl Write for FailingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() > self.left {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
        }
        self.left -= buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_failing_file_is_a_local_io_error_naming_it_not_corrupt_gzip() {
    // Several handoff batches, so the checking thread fails mid-stream; and the
    // raw path, which writes from this thread.
    let raw = synthetic(1500);
    let gz = gzip(&raw);
    for input in [&gz, &raw] {
        for left in [0, 100_000, 3 << 20] {
            let sink = NamedSink::new(FailingSink { left }, "/restore/.out.db.snapjob-1.tmp");
            let mut v = Verifier::new(sink, true);
            let outcome = input
                .chunks(64 << 10)
                .try_for_each(|c| v.update(c))
                .and_then(|()| v.finish().map(|_| ()));
            let e = outcome.unwrap_err();
            assert_eq!(e.exit_code(), 74, "left {left}: {e:?}");
            assert!(
                e.chain()
                    .starts_with("/restore/.out.db.snapjob-1.tmp: cannot write the snapshot: "),
                "{}",
                e.chain()
            );
            assert!(
                matches!(&e, Error::LocalIo { source, .. } if source.kind() == io::ErrorKind::StorageFull),
                "{e:?}"
            );
        }
    }
    // A sink that names no file is still not corrupt gzip.
    let mut v = Verifier::new(FailingSink { left: 0 }, true);
    let e = v
        .update(&gz)
        .and_then(|()| v.finish().map(|_| ()))
        .unwrap_err();
    assert!(
        matches!(&e, Error::Other(m) if m.contains("disk full")),
        "{e:?}"
    );
}

#[test]
fn a_disk_full_device_is_named() {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let sink = NamedSink::new(io::BufWriter::with_capacity(4096, file), "/dev/full");
    let mut v = Verifier::new(sink, false);
    let e = v
        .update(&gzip(&synthetic(4)))
        .and_then(|()| v.finish().map(|_| ()))
        .unwrap_err();
    assert_eq!(e.exit_code(), 74, "{e:?}");
    assert!(
        e.chain()
            .starts_with("/dev/full: cannot write the snapshot: "),
        "{}",
        e.chain()
    );
}

#[test]
fn a_first_page_without_the_bbolt_magic_is_refused_at_once() {
    let mut not_db = vec![0u8; 4096];
    not_db[16..20].copy_from_slice(b"ABCD");
    for (input, what) in [
        (not_db.clone(), "the snapshot"),
        (gzip(&not_db.repeat(300)), "the decompressed snapshot"),
    ] {
        let mut v = Verifier::new(Vec::new(), true);
        // The first 64 KiB is enough; the rest never has to be read.
        let head = &input[..input.len().min(64 << 10)];
        let e = match head.chunks(7).try_for_each(|c| v.update(c)) {
            Err(e) => e,
            Ok(()) => panic!("{what}: accepted its first {} bytes", head.len()),
        };
        assert_eq!(e.exit_code(), 65);
        assert_eq!(
            e.to_string(),
            format!("{what} is not an etcd (bbolt) database")
        );
    }
}

/// Feeds `bytes` in `chunk`-sized pieces to a verifier (trailer checked or not).
fn verify_raw(bytes: &[u8], chunk: usize, check_trailer: bool) -> Result<SnapshotInfo> {
    let mut v = Verifier::with_trailer_check(Vec::new(), true, check_trailer);
    for c in bytes.chunks(chunk) {
        v.update(c)?;
    }
    v.finish().map(|(info, out)| {
        assert_eq!(out, bytes, "the sink gets every byte");
        info
    })
}

#[test]
fn input_digest_of_short_and_odd_raw_inputs() {
    // Lengths around the two-byte sniff, the 20-byte magic and the 32-byte
    // trailer hold-back, in chunkings that split each of them.
    for len in [0, 1, 2, 3, 19, 20, 21, 31, 32, 33, 52, 63, 64, 65, 600] {
        let mut bytes: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        if len >= 20 {
            bytes[16..20].copy_from_slice(&BOLT_MAGIC.to_le_bytes());
        }
        for chunk in [1, 5, 31, 32, 33, 1000] {
            let at = format!("len {len}, chunk {chunk}");
            // Without the trailer check a bolt head is enough: the digest and
            // the counts are the whole input's.
            match verify_raw(&bytes, chunk, false) {
                Ok(info) => {
                    assert!(len >= 20, "{at}: accepted without a bolt head");
                    assert_eq!(
                        info.input_sha256.unwrap(),
                        hex::encode(Sha256::digest(&bytes)),
                        "{at}"
                    );
                    assert_eq!(info.input_bytes, len as u64, "{at}");
                    assert_eq!(info.snapshot_bytes, len as u64, "{at}");
                    assert!(!info.gzip, "{at}");
                    assert_eq!(info.has_trailer, len % 512 == 32, "{at}");
                }
                Err(Error::Data(m)) if len == 0 => assert!(m.contains("is empty"), "{at}: {m}"),
                Err(Error::Data(m)) if len < 20 => {
                    assert!(m.contains("not an etcd (bbolt) database"), "{at}: {m}")
                }
                Err(e) => panic!("{at}: {e:?}"),
            }
            // With it, each length fails for its own reason, as a data error.
            let want = match len {
                0 => "is empty",
                1..20 => "not an etcd (bbolt) database",
                // 32 = 512*0 + 32: the shape of a snapshot, not its digest.
                32 => "fails its SHA-256 trailer check",
                _ => "has no SHA-256 trailer",
            };
            match verify_raw(&bytes, chunk, true) {
                Err(Error::Data(m)) => assert!(m.contains(want), "{at}: {m}"),
                other => panic!("{at}: {other:?}"),
            }
        }
    }
    // The shortest snapshots that pass, one 512-byte db and its trailer: the
    // trailer is split from the db in every chunking.
    let mut db = vec![0u8; 512];
    db[16..20].copy_from_slice(&BOLT_MAGIC.to_le_bytes());
    let mut snap = db.clone();
    snap.extend_from_slice(&Sha256::digest(&db));
    for chunk in [1, 3, 31, 32, 33, 511, 512, 513, 4096] {
        let info = verify_raw(&snap, chunk, true).unwrap();
        assert_eq!(
            info.input_sha256.unwrap(),
            hex::encode(Sha256::digest(&snap)),
            "chunk {chunk}"
        );
        assert!(info.has_trailer);
        assert_eq!(info.snapshot_bytes, 544);
    }
    let mut page = synthetic(2);
    page.truncate(1024 + 5);
    for chunk in [1, 3, 32, 33, 4096] {
        let info = verify_raw(&page, chunk, false).unwrap();
        assert_eq!(
            info.input_sha256.unwrap(),
            hex::encode(Sha256::digest(&page))
        );
    }
}

#[test]
fn the_real_fixtures() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let read = |n: &str| std::fs::read(dir.join(n)).unwrap();
    let info = verify_bytes(&read("etcd-3.4-small.db")).unwrap();
    assert_eq!(info.snapshot_bytes, 106_528);
    let info = verify_bytes(&read("etcd-3.4-small.db.gz")).unwrap();
    assert!(info.gzip);
    assert_eq!(info.snapshot_bytes, 106_528);
    let cases = [
        ("broken-trailer.db.gz", "SHA-256 trailer check"),
        ("truncated.db.gz", "gzip stream is corrupt or truncated"),
        ("empty.db.gz", "is empty"),
    ];
    for (name, want) in cases {
        let err = verify_bytes(&read(name)).unwrap_err();
        assert_eq!(err.exit_code(), 65, "{name}");
        assert!(err.to_string().contains(want), "{name}: {err}");
    }
}

#[test]
fn refusals() {
    let raw = synthetic(2);
    let mut flipped = raw.clone();
    flipped[5000] ^= 1;
    assert!(
        verify_bytes(&flipped)
            .unwrap_err()
            .to_string()
            .contains("trailer check")
    );
    let no_trailer = &raw[..raw.len() - 32];
    assert!(
        verify_bytes(no_trailer)
            .unwrap_err()
            .to_string()
            .contains("no SHA-256 trailer")
    );
    let cut = &raw[..raw.len() - 1];
    assert!(
        verify_bytes(cut)
            .unwrap_err()
            .to_string()
            .contains("no SHA-256 trailer")
    );
    let text = b"this is not a database at all, just text padded out".repeat(100);
    assert!(
        verify_bytes(&text)
            .unwrap_err()
            .to_string()
            .contains("not an etcd")
    );
    let mut gz = gzip(&raw);
    gz.truncate(gz.len() - 4);
    assert!(verify_bytes(&gz).unwrap_err().to_string().contains("gzip"));
    let mut trailing = gzip(&raw);
    trailing.extend_from_slice(b"garbage");
    assert_eq!(verify_bytes(&trailing).unwrap_err().exit_code(), 65);
    let one_byte = verify_bytes(&[0x1f]).unwrap_err();
    assert!(one_byte.to_string().contains("not an etcd"), "{one_byte}");
}

#[test]
fn concatenated_gzip_members_are_one_stream() {
    let raw = synthetic(2);
    let (a, b) = raw.split_at(5000);
    let mut gz = gzip(a);
    gz.extend_from_slice(&gzip(b));
    let (_, out) = verify_in_chunks(&gz, 1000).unwrap();
    assert_eq!(out, raw);
}
