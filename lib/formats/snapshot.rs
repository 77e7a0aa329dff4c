//! Verifying an etcd snapshot as its bytes stream past, gzip'd or raw.
//!
//! An etcd v3 snapshot taken through the Maintenance API is `db ‖ SHA-256(db)`,
//! so its length is `k*512 + 32` (docs/ETCD-RESTORE.md §1.1). [`Verifier`] takes the
//! object's bytes in chunks of any size, detects gzip by its magic bytes (never by
//! the file name), decompresses on the fly, checks the bbolt magic of the first
//! page and the trailing SHA-256, and optionally hashes the input bytes (the
//! SHA-256 recorded with the object). Decompressed bytes go to a sink, which is a
//! file for `restore` and nothing for `store`. Memory use does not depend on size.

use std::io::{self, Write};

use crate::base::digest::Sha256;

use crate::base::error::{Error, Result};

/// The gzip magic bytes.
pub(crate) const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// bbolt's magic, at byte 16 of the first (meta) page, in either byte order.
const BOLT_MAGIC: u32 = 0xED0C_DAED;
/// Length of the SHA-256 trailer.
const TRAILER: usize = 32;

/// What verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The input was gzip.
    pub gzip: bool,
    /// Bytes of input (the object as stored).
    pub input_bytes: u64,
    /// Bytes of the raw snapshot, trailer included.
    pub snapshot_bytes: u64,
    /// SHA-256 of the input, when asked for.
    pub input_sha256: Option<String>,
    /// The snapshot ends with the 32-byte SHA-256 trailer (length `512*k + 32`).
    pub has_trailer: bool,
}

/// A push-style snapshot verifier writing the raw snapshot to `W`.
pub struct Verifier<W: Write + Send + 'static> {
    check_trailer: bool,
    input_hash: Option<Sha256>,
    input_bytes: u64,
    head: Vec<u8>,
    stage: Stage<W>,
}

enum Stage<W: Write + Send + 'static> {
    /// Fewer than two bytes seen: the format is not known yet.
    Sniffing(Option<TrailerCheck<W>>),
    Gzip(Box<flate2::write::MultiGzDecoder<Handoff<W>>>),
    Raw(TrailerCheck<W>),
}

impl<W: Write + Send + 'static> Verifier<W> {
    /// A verifier writing the raw snapshot to `sink`; hashes the input when
    /// `hash_input` is true.
    pub fn new(sink: W, hash_input: bool) -> Self {
        Self::with_trailer_check(sink, hash_input, true)
    }

    /// Like [`Verifier::new`]; with `check_trailer` false the SHA-256 trailer is
    /// neither required nor checked (etcd's `--skip-hash-check`, for a db copied
    /// out of a data dir).
    pub fn with_trailer_check(sink: W, hash_input: bool, check_trailer: bool) -> Self {
        Verifier {
            check_trailer,
            input_hash: hash_input.then(Sha256::new),
            input_bytes: 0,
            head: Vec::with_capacity(2),
            stage: Stage::Sniffing(Some(TrailerCheck::new(sink))),
        }
    }

    /// Feeds the next bytes of the object.
    pub fn update(&mut self, chunk: &[u8]) -> Result<()> {
        self.input_bytes += chunk.len() as u64;
        if let Stage::Sniffing(check) = &mut self.stage {
            let want = 2 - self.head.len();
            self.head.extend_from_slice(&chunk[..want.min(chunk.len())]);
            if self.head.len() < 2 {
                return Ok(());
            }
            let mut check = check.take().expect("sniffing holds the checker");
            check.gzip = self.head == GZIP_MAGIC;
            self.stage = if check.gzip {
                Stage::Gzip(Box::new(flate2::write::MultiGzDecoder::new(Handoff::new(
                    check,
                ))))
            } else {
                Stage::Raw(check)
            };
            let head = std::mem::take(&mut self.head);
            self.write_stage(&head)?;
            return self.write_stage(&chunk[want.min(chunk.len())..]);
        }
        self.write_stage(chunk)
    }

    fn write_stage(&mut self, bytes: &[u8]) -> Result<()> {
        match &mut self.stage {
            Stage::Gzip(d) => {
                if let Some(h) = &mut self.input_hash {
                    h.update(bytes);
                }
                d.write_all(bytes).map_err(gzip_error)
            }
            // A raw input is what the trailer check hashes: its digest is derived
            // from that state in `finish`, so raw bytes are hashed once, not twice.
            Stage::Raw(c) => c.write_all(bytes).map_err(sink_error),
            Stage::Sniffing(_) => unreachable!("sniffing ends before writes"),
        }
    }

    /// Ends the input: checks the gzip stream is complete and the trailer matches;
    /// returns what was found and the sink.
    pub fn finish(mut self) -> Result<(SnapshotInfo, W)> {
        if let Stage::Sniffing(check) = &mut self.stage {
            let mut check = check.take().expect("sniffing holds the checker");
            let head = std::mem::take(&mut self.head);
            check.write_all(&head).map_err(sink_error)?;
            self.stage = Stage::Raw(check);
        }
        let gzip = matches!(self.stage, Stage::Gzip(_));
        let mut input_hash = self.input_hash;
        let check = match self.stage {
            Stage::Gzip(d) => d.finish().and_then(Handoff::finish).map_err(gzip_error)?,
            Stage::Raw(c) => {
                if input_hash.is_some() {
                    input_hash = Some(c.whole_hash());
                }
                c
            }
            Stage::Sniffing(_) => unreachable!(),
        };
        let snapshot_bytes = check.len;
        let has_trailer = snapshot_bytes % 512 == TRAILER as u64;
        let sink = check.finish(self.check_trailer)?;
        Ok((
            SnapshotInfo {
                gzip,
                input_bytes: self.input_bytes,
                snapshot_bytes,
                input_sha256: input_hash.map(|h| hex::encode(h.finalize())),
                has_trailer,
            },
            sink,
        ))
    }
}

fn gzip_error(e: io::Error) -> Error {
    stop_error(e)
        .unwrap_or_else(|e| Error::Data(format!("the gzip stream is corrupt or truncated: {e}")))
}

fn sink_error(e: io::Error) -> Error {
    stop_error(e).unwrap_or_else(|e| Error::Other(format!("writing the snapshot: {e}")))
}

/// The error a [`Stop`] inside `e` stands for; `e` itself when it holds none.
fn stop_error(e: io::Error) -> std::result::Result<Error, io::Error> {
    if !e.get_ref().is_some_and(|inner| inner.is::<Stop>()) {
        return Err(e);
    }
    let stop = e
        .into_inner()
        .and_then(|inner| inner.downcast::<Stop>().ok())
        .expect("checked above");
    Ok(match *stop {
        Stop::Write {
            path: Some(path),
            source,
        } => Error::io(path, "cannot write the snapshot", source),
        Stop::Write { path: None, source } => {
            Error::Other(format!("writing the snapshot: {source}"))
        }
        Stop::Thread(m) => Error::Other(format!("writing the snapshot: {m}")),
        Stop::Refused(m) => Error::Data(m),
    })
}

/// Why the trailer check or the sink stopped the stream, carried through the
/// decompressor inside an `io::Error`, so neither is mistaken for corrupt gzip.
#[derive(Debug)]
enum Stop {
    /// The sink could not write (to the file `path`, when it is a [`NamedSink`]).
    Write {
        path: Option<std::path::PathBuf>,
        source: io::Error,
    },
    /// The checking thread stopped or panicked.
    Thread(String),
    /// The bytes are not a snapshot: a data error.
    Refused(String),
}

impl Stop {
    fn into_io(self) -> io::Error {
        io::Error::other(self)
    }
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Write {
                path: Some(p),
                source,
            } => write!(f, "{}: {source}", p.display()),
            Stop::Write { path: None, source } => write!(f, "{source}"),
            Stop::Thread(m) | Stop::Refused(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Stop {}

/// A sink that is a local file: its write errors become [`Error::LocalIo`]
/// naming `path` (exit 74), not a general failure.
pub struct NamedSink<W: Write> {
    inner: W,
    path: std::path::PathBuf,
}

impl<W: Write> NamedSink<W> {
    /// `inner` writes the file at `path`.
    pub fn new(inner: W, path: impl Into<std::path::PathBuf>) -> Self {
        NamedSink {
            inner,
            path: path.into(),
        }
    }

    /// The writer.
    pub fn into_inner(self) -> W {
        self.inner
    }

    fn name(&self, e: io::Error) -> io::Error {
        Stop::Write {
            path: Some(self.path.clone()),
            source: e,
        }
        .into_io()
    }
}

impl<W: Write> Write for NamedSink<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf).map_err(|e| self.name(e))
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf).map_err(|e| self.name(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().map_err(|e| self.name(e))
    }
}

/// Bytes handed to the checking thread at a time.
const HANDOFF_BATCH: usize = 1 << 20;

/// Carries decompressed bytes to a thread that runs the trailer check and the
/// sink, so inflating and hashing (each about a second per GiB) use two cores.
/// At most four batches are in memory.
struct Handoff<W: Write> {
    /// The first 20 decompressed bytes, checked here: a batch reaches the
    /// checking thread only once it is full.
    first: Vec<u8>,
    batch: Vec<u8>,
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    worker: Option<std::thread::JoinHandle<(TrailerCheck<W>, io::Result<()>)>>,
}

impl<W: Write + Send + 'static> Handoff<W> {
    fn new(mut check: TrailerCheck<W>) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
        let worker = std::thread::spawn(move || {
            for batch in rx {
                if let Err(e) = check.write_all(&batch) {
                    return (check, Err(e));
                }
            }
            (check, Ok(()))
        });
        Handoff {
            first: Vec::with_capacity(20),
            batch: Vec::with_capacity(HANDOFF_BATCH),
            tx: Some(tx),
            worker: Some(worker),
        }
    }

    fn send_batch(&mut self) -> io::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(HANDOFF_BATCH));
        let sent = self.tx.as_ref().map(|tx| tx.send(batch).is_ok());
        if sent == Some(true) {
            return Ok(());
        }
        // The thread stopped on an error: report it.
        self.tx = None;
        Err(self
            .join()
            .err()
            .unwrap_or_else(|| Stop::Thread("the checking thread stopped".into()).into_io()))
    }

    fn join(&mut self) -> io::Result<TrailerCheck<W>> {
        let worker = self
            .worker
            .take()
            .ok_or_else(|| Stop::Thread("the checking thread already stopped".into()).into_io())?;
        match worker.join() {
            Ok((check, Ok(()))) => Ok(check),
            Ok((_, Err(e))) => Err(e),
            Err(_) => Err(Stop::Thread("the checking thread panicked".into()).into_io()),
        }
    }

    /// Sends what is left and waits for the thread; returns its checker.
    fn finish(mut self) -> io::Result<TrailerCheck<W>> {
        self.send_batch()?;
        self.tx = None;
        self.join()
    }
}

impl<W: Write + Send + 'static> Write for Handoff<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.first.len() < 20 {
            let n = (20 - self.first.len()).min(buf.len());
            self.first.extend_from_slice(&buf[..n]);
            if self.first.len() == 20 && !is_bolt_magic(&self.first[16..20]) {
                let m = "the decompressed snapshot is not an etcd (bbolt) database";
                return Err(Stop::Refused(m.into()).into_io());
            }
        }
        self.batch.extend_from_slice(buf);
        if self.batch.len() >= HANDOFF_BATCH {
            self.send_batch()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Batches go when full or at the end; the sink is flushed by its owner.
        Ok(())
    }
}

/// Hashes the raw snapshot except its last 32 bytes, keeps those apart, and
/// passes everything through to the sink.
struct TrailerCheck<W: Write> {
    sink: W,
    hash: Sha256,
    /// The last (up to) 32 bytes seen, not hashed yet.
    tail: Vec<u8>,
    /// The first 20 bytes (page header + bbolt magic).
    first: Vec<u8>,
    len: u64,
    /// The bytes are decompressed (for messages).
    gzip: bool,
}

impl<W: Write> TrailerCheck<W> {
    fn new(sink: W) -> Self {
        TrailerCheck {
            sink,
            hash: Sha256::new(),
            tail: Vec::with_capacity(2 * TRAILER),
            first: Vec::with_capacity(20),
            len: 0,
            gzip: false,
        }
    }

    fn what(&self) -> &'static str {
        if self.gzip {
            "the decompressed snapshot"
        } else {
            "the snapshot"
        }
    }

    /// The first page's bbolt magic, once its bytes are in: anything else is
    /// refused before the rest is read (etcd's db always starts with a meta page).
    fn not_bolt(&self) -> Option<String> {
        (self.first.len() >= 20 && !is_bolt_magic(&self.first[16..20]))
            .then(|| format!("{} is not an etcd (bbolt) database", self.what()))
    }

    /// The hash of every byte written so far, trailer candidate included.
    fn whole_hash(&self) -> Sha256 {
        let mut h = self.hash.clone();
        h.update(&self.tail);
        h
    }

    fn finish(self, check_trailer: bool) -> Result<W> {
        let what = self.what();
        if self.len == 0 {
            return Err(Error::Data(format!("{what} is empty")));
        }
        if self.first.len() < 20 || !is_bolt_magic(&self.first[16..20]) {
            return Err(Error::Data(format!(
                "{what} is not an etcd (bbolt) database"
            )));
        }
        if !check_trailer {
            return Ok(self.sink);
        }
        if self.len % 512 != TRAILER as u64 {
            return Err(Error::Data(format!(
                "{what} has no SHA-256 trailer ({} bytes is not 512*k+32): truncated, or not taken with `etcdctl snapshot save`",
                self.len
            )));
        }
        if self.hash.finalize()[..] != self.tail[..] {
            return Err(Error::Data(format!(
                "{what} fails its SHA-256 trailer check: the database is corrupt"
            )));
        }
        Ok(self.sink)
    }
}

fn is_bolt_magic(b: &[u8]) -> bool {
    let b: [u8; 4] = b.try_into().expect("four bytes");
    u32::from_le_bytes(b) == BOLT_MAGIC || u32::from_be_bytes(b) == BOLT_MAGIC
}

impl<W: Write> Write for TrailerCheck<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.first.len() < 20 {
            let n = (20 - self.first.len()).min(buf.len());
            self.first.extend_from_slice(&buf[..n]);
            if let Some(refusal) = self.not_bolt() {
                return Err(Stop::Refused(refusal).into_io());
            }
        }
        self.len += buf.len() as u64;
        if buf.len() >= TRAILER {
            // Everything held back plus all but the last 32 new bytes is db content.
            self.hash.update(&self.tail);
            self.hash.update(&buf[..buf.len() - TRAILER]);
            self.tail.clear();
            self.tail.extend_from_slice(&buf[buf.len() - TRAILER..]);
        } else {
            self.tail.extend_from_slice(buf);
            if self.tail.len() > TRAILER {
                let excess = self.tail.len() - TRAILER;
                self.hash.update(&self.tail[..excess]);
                self.tail.drain(..excess);
            }
        }
        self.sink.write_all(buf).map_err(|e| {
            if e.get_ref().is_some_and(|inner| inner.is::<Stop>()) {
                e // already says which file
            } else {
                Stop::Write {
                    path: None,
                    source: e,
                }
                .into_io()
            }
        })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sink.flush()
    }
}

/// Feeds the file at `src` through `v` in 1 MiB reads and finishes it; data errors
/// name the file.
pub fn verify_file<W: Write + Send + 'static>(
    src: &std::path::Path,
    mut v: Verifier<W>,
) -> Result<(SnapshotInfo, W)> {
    use std::io::Read;
    let mut input =
        std::fs::File::open(src).map_err(|e| Error::io(src, "cannot open snapshot", e))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = input
            .read(&mut buf)
            .map_err(|e| Error::io(src, "cannot read snapshot", e))?;
        if n == 0 {
            break;
        }
        v.update(&buf[..n]).map_err(|e| e.about(src.display()))?;
    }
    v.finish().map_err(|e| e.about(src.display()))
}

/// Verifies a whole in-memory snapshot (small inputs, tests).
pub fn verify_bytes(bytes: &[u8]) -> Result<SnapshotInfo> {
    let mut v = Verifier::new(io::sink(), true);
    v.update(bytes)?;
    Ok(v.finish()?.0)
}

#[cfg(test)]
pub(crate) mod tests {
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
}
