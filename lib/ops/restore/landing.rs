//! Where `restore`'s download lands: several ranged GETs write into one file at
//! their offsets, in whatever order their bytes arrive, and the contiguous prefix
//! is verified as it grows.
//!
//! Ranges are fetched several at once because one GET stream is capped well below
//! what a server sends over several (benches/RESULTS.md). Writing each range where
//! it belongs, as s5cmd and aws-cli do, keeps memory flat however many ranges are
//! in flight or how unevenly they progress. Verification (object SHA-256, gzip, the
//! etcd trailer) needs the bytes in order: a second thread reads the file back (from
//! the page cache) as its contiguous prefix grows, so verification neither holds
//! the download up nor holds bytes in memory.
//!
//! A raw object is its own snapshot: the landed file becomes the output. A gzip
//! object lands in a scratch file beside the output and is inflated into the
//! output's temporary file as it is verified; the scratch file is removed at the
//! end. Nothing is renamed into place here: the caller does that once the size
//! and the recorded SHA-256 are checked, and dropping a [`Landed`] removes both.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::base::digest::Sha256;
use crate::base::error::{Error, Result};
use crate::base::fs::TempFile;
use crate::base::progress::Progress;
use crate::formats::encrypt::{self, AGE_MAGIC, Decryption};
use crate::formats::snapshot::{GZIP_MAGIC, NamedSink, SnapshotInfo, Verifier};

/// Bytes read back from the file at a time, for verification.
const READ_BACK: usize = 1 << 20;
/// The snapshot written so far is synced to disk after every this many bytes of
/// the object are verified, on a thread of its own (a sync must not hold up the
/// inflate), so the final fsync has little left to wait for.
const WRITE_BACK: u64 = 64 << 20;

/// Bytes of the object, as the HTTP client received them, and the offset the
/// first belongs at (a run of them goes over the channel at once: one hand-off per
/// chunk costs more than writing it).
pub(crate) type Chunk = (u64, Vec<Bytes>);

/// A verified download, not yet in place.
pub(crate) struct Landed {
    /// What verification found.
    pub(crate) info: SnapshotInfo,
    /// Bytes received.
    pub(crate) received: u64,
    /// The raw snapshot, fsynced: to be renamed over the destination.
    pub(crate) snapshot: TempFile,
    /// The landed gzip object, removed on drop.
    _scratch: Option<TempFile>,
}

impl Landed {
    /// Renames the snapshot over `dest`; the scratch file, if any, is removed.
    pub(crate) fn persist(self, dest: &Path) -> Result<()> {
        self.snapshot.persist(dest)
    }

    /// The snapshot's temporary file, kept (locked) by the caller; the scratch
    /// file, if any, is removed now.
    pub(crate) fn into_snapshot(self) -> TempFile {
        self.snapshot
    }
}

/// What the object's landing needs to know.
pub(crate) struct Plan {
    /// The output the snapshot is for; temporary files are created beside it.
    pub(crate) dest: PathBuf,
    /// The object's size.
    pub(crate) size: u64,
    /// The range size: chunks of one range arrive in order, ranges in any order.
    pub(crate) range: u64,
    /// Progress reporting.
    pub(crate) progress: Progress,
    /// How an encrypted (age) object is decrypted.
    pub(crate) decrypt: Decryption,
}

/// Starts the thread that writes chunks where they belong and verifies the
/// prefix. It ends when `chunks` closes, or at its first error (the sender then
/// sees the channel closed).
pub(crate) fn spawn(
    plan: Plan,
    chunks: mpsc::Receiver<Chunk>,
) -> tokio::task::JoinHandle<Result<Landed>> {
    tokio::task::spawn_blocking(move || land(plan, chunks))
}

fn land(plan: Plan, mut chunks: mpsc::Receiver<Chunk>) -> Result<Landed> {
    let Plan {
        dest,
        size,
        range,
        mut progress,
        decrypt,
    } = plan;
    let (landing, file) = TempFile::beside(&dest, "download")?;
    let shared = Shared::default();
    let (written, verified) = std::thread::scope(|scope| {
        // Early writeback: its errors show again at the final fsync, which reports them.
        let (sync_tx, sync_rx) = std::sync::mpsc::sync_channel::<File>(1);
        scope.spawn(move || {
            for f in sync_rx {
                let _ = f.sync_data();
            }
        });
        let verifier = {
            let (file, path, dest, shared) = (&file, &landing.path, &dest, &shared);
            let decrypt = &decrypt;
            scope.spawn(move || {
                let checked = if is_encrypted(file, path, size, shared)? {
                    verify_encrypted(file, path, dest, size, shared, decrypt)
                } else {
                    verify(file, path, dest, size, shared, sync_tx)
                };
                if checked.is_err() {
                    shared.failed.store(true, Ordering::Relaxed);
                }
                checked
            })
        };
        let written = (|| {
            let mut book = Book::new(size, range);
            while let Some((offset, run)) = chunks.blocking_recv() {
                if shared.failed.load(Ordering::Relaxed) {
                    break;
                }
                let len: u64 = run.iter().map(|b| b.len() as u64).sum();
                if !book.fits(offset, len) {
                    return Err(Error::Data(format!(
                        "{len} bytes at offset {offset} lie outside the range being fetched"
                    )));
                }
                let mut at = offset;
                for bytes in &run {
                    file.write_all_at(bytes, at)
                        .map_err(|e| Error::io(&landing.path, "cannot write the download", e))?;
                    at += bytes.len() as u64;
                }
                progress.add(len);
                book.record(offset, len);
                shared.advance(book.contiguous);
            }
            Ok(book.received)
        })();
        // Stops the verifier if the download ended short, and the senders
        // (their channel closes) if verification failed.
        shared.close();
        drop(chunks);
        let verified = verifier
            .join()
            .unwrap_or_else(|_| Err(Error::Other("verification thread panicked".into())));
        (written, verified)
    });
    // A write error explains a short download better than the verifier's
    // complaint about it; a verification failure ends the download early.
    let received = written?;
    let (info, output) = verified?;
    match output {
        None => {
            file.sync_all()
                .map_err(|e| Error::io(&landing.path, "cannot sync the snapshot", e))?;
            Ok(Landed {
                info,
                received,
                snapshot: landing,
                _scratch: None,
            })
        }
        Some((temp, out)) => {
            crate::base::fs::flush_sync(out, &temp.path)?;
            Ok(Landed {
                info,
                received,
                snapshot: temp,
                _scratch: Some(landing),
            })
        }
    }
}

/// What the landing thread tells the verifying thread.
#[derive(Default)]
struct Shared {
    /// (bytes from the start that are in the file, no more will come)
    state: Mutex<(u64, bool)>,
    changed: Condvar,
    /// Verification failed: landing more bytes is pointless.
    failed: AtomicBool,
}

impl Shared {
    fn advance(&self, contiguous: u64) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if contiguous > state.0 {
            state.0 = contiguous;
            self.changed.notify_one();
        }
    }

    fn close(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
        self.changed.notify_one();
    }

    /// Waits until more than `from` bytes are in the file; the new end, or
    /// None when no more will come.
    fn wait_beyond(&self, from: u64) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if state.0 > from {
                return Some(state.0);
            }
            if state.1 {
                return None;
            }
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// The verifying thread: reads the file back in order as it fills (from the page
/// cache) and verifies it, so a slow check (gzip inflates slower than a fast
/// network delivers) never holds the download up. Returns what verification
/// found and, for a gzip object, the inflated snapshot's file.
#[allow(clippy::type_complexity)]
fn verify(
    file: &File,
    path: &Path,
    dest: &Path,
    size: u64,
    shared: &Shared,
    write_back: std::sync::mpsc::SyncSender<File>,
) -> Result<(SnapshotInfo, Option<(TempFile, BufWriter<File>)>)> {
    let checked = (|| {
        let mut check = Check::new(dest);
        let mut buf = vec![0; READ_BACK.min(size as usize)];
        let (mut verified, mut synced) = (0, 0);
        while verified < size {
            if verified - synced >= WRITE_BACK {
                // Skipped while the last one is still running.
                if let Some(handle) = check.snapshot_file(file) {
                    let _ = write_back.try_send(handle);
                }
                synced = verified;
            }
            let Some(end) = shared.wait_beyond(verified) else {
                return Err(Error::Data(format!(
                    "the download ended after {verified} of {size} bytes in order"
                )));
            };
            while verified < end {
                let n = READ_BACK.min((end - verified) as usize);
                file.read_exact_at(&mut buf[..n], verified)
                    .map_err(|e| Error::io(path, "cannot read back the download", e))?;
                check.feed(&buf[..n])?;
                verified += n as u64;
            }
        }
        check.finish()
    })();
    if checked.is_err() {
        shared.failed.store(true, Ordering::Relaxed);
    }
    checked
}

/// Whether the object is an age file, by its first bytes (waited for).
fn is_encrypted(file: &File, path: &Path, size: u64, shared: &Shared) -> Result<bool> {
    let want = (AGE_MAGIC.len() as u64).min(size);
    let mut have = 0;
    while have < want {
        match shared.wait_beyond(have) {
            Some(end) => have = end,
            None => return Ok(false), // short: the plain verification tells it
        }
    }
    let mut head = vec![0; want as usize];
    file.read_exact_at(&mut head, 0)
        .map_err(|e| Error::io(path, "cannot read back the download", e))?;
    Ok(encrypt::is_age(&head))
}

/// The verifying thread for an age object: the landed ciphertext is read back in
/// order as it fills, hashed (what the recorded SHA-256 is of), decrypted, and the
/// plaintext verified and written (inflated when gzip) to the output's temporary
/// file. The plaintext is never written anywhere else.
#[allow(clippy::type_complexity)]
fn verify_encrypted(
    file: &File,
    path: &Path,
    dest: &Path,
    size: u64,
    shared: &Shared,
    decrypt: &Decryption,
) -> Result<(SnapshotInfo, Option<(TempFile, BufWriter<File>)>)> {
    let (temp, out) = TempFile::create(dest)?;
    let sink = NamedSink::new(BufWriter::with_capacity(1 << 20, out), &temp.path);
    let mut v = Verifier::new(sink, false);
    let mut reader = InOrder {
        file,
        path,
        shared,
        size,
        at: 0,
        hash: Sha256::new(),
        failed: None,
    };
    // The reader's own failure (a short download) explains a decryption error.
    let decrypted = encrypt::decrypt_into(&mut reader, decrypt, &mut v);
    if let Some(e) = reader.failed.take() {
        return Err(e);
    }
    decrypted?;
    if reader.at != size {
        return Err(Error::Data(format!(
            "{} bytes follow the end of the encrypted stream",
            size - reader.at
        )));
    }
    let (mut info, sink) = v.finish()?;
    info.input_bytes = size;
    info.input_sha256 = Some(hex::encode(reader.hash.finalize()));
    tracing::info!(
        recipients = decrypt.recorded.as_deref().unwrap_or("not recorded"),
        "encrypted backup (age) decrypted"
    );
    Ok((info, Some((temp, sink.into_inner()))))
}

/// The landed file read in order, waiting for its contiguous prefix to grow;
/// hashes what it reads. A download that ends short is kept in `failed`.
struct InOrder<'a> {
    file: &'a File,
    path: &'a Path,
    shared: &'a Shared,
    size: u64,
    at: u64,
    hash: Sha256,
    failed: Option<Error>,
}

impl Read for InOrder<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let Some(end) = self.shared.wait_beyond(self.at) else {
            let e = Error::Data(format!(
                "the download ended after {} of {} bytes in order",
                self.at, self.size
            ));
            self.failed = Some(e);
            return Err(io::Error::other("the download ended short"));
        };
        let n = buf.len().min((end - self.at) as usize);
        if let Err(e) = self.file.read_exact_at(&mut buf[..n], self.at) {
            let msg = e.to_string();
            self.failed = Some(Error::io(self.path, "cannot read back the download", e));
            return Err(io::Error::other(msg));
        }
        self.hash.update(&buf[..n]);
        self.at += n as u64;
        Ok(n)
    }
}

/// Which bytes of which range are in the file, and how far from the start they
/// are contiguous.
struct Book {
    size: u64,
    range: u64,
    /// Bytes written per range, from the range's start (a range's chunks come in
    /// order).
    written: Vec<u64>,
    received: u64,
    contiguous: u64,
}

impl Book {
    fn new(size: u64, range: u64) -> Self {
        Book {
            size,
            range,
            written: vec![0; size.div_ceil(range) as usize],
            received: 0,
            contiguous: 0,
        }
    }

    fn bounds(&self, index: usize) -> (u64, u64) {
        let start = index as u64 * self.range;
        (start, (start + self.range).min(self.size))
    }

    /// The run continues its range where the range's last run ended.
    fn fits(&self, offset: u64, len: u64) -> bool {
        let index = (offset / self.range) as usize;
        if index >= self.written.len() {
            return false;
        }
        let (start, end) = self.bounds(index);
        offset == start + self.written[index] && offset + len <= end
    }

    /// Counts a run that [`Book::fits`], and moves `contiguous` on.
    fn record(&mut self, offset: u64, len: u64) {
        self.written[(offset / self.range) as usize] += len;
        self.received += len;
        while self.contiguous < self.size {
            let index = (self.contiguous / self.range) as usize;
            let (start, stop) = self.bounds(index);
            self.contiguous = start + self.written[index];
            if self.contiguous < stop {
                break;
            }
        }
    }
}

/// Verification of the prefix; the output file is created once the first bytes
/// tell a gzip object (which inflates into it) from a raw one (which is its own
/// output).
struct Check {
    dest: PathBuf,
    head: Vec<u8>,
    verifier: Option<Verifier<Output>>,
    /// For a gzip object: the inflated snapshot's temporary file, and another handle
    /// on it for early writeback (the verifier's sink writes through the first).
    output: Option<(TempFile, File)>,
}

impl Check {
    fn new(dest: &Path) -> Self {
        Check {
            dest: dest.to_path_buf(),
            head: Vec::new(),
            verifier: None,
            output: None,
        }
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<()> {
        if let Some(v) = &mut self.verifier {
            return v.update(bytes);
        }
        if self.head.is_empty() && bytes.len() >= GZIP_MAGIC.len() {
            return self.start(bytes);
        }
        let mut head = std::mem::take(&mut self.head);
        head.extend_from_slice(bytes);
        if head.len() >= GZIP_MAGIC.len() {
            return self.start(&head);
        }
        self.head = head;
        Ok(())
    }

    fn start(&mut self, first: &[u8]) -> Result<()> {
        let sink = if first.starts_with(&GZIP_MAGIC) {
            let (temp, file) = TempFile::create(&self.dest)?;
            let handle = file
                .try_clone()
                .map_err(|e| Error::io(&temp.path, "cannot open the output", e))?;
            let sink = NamedSink::new(BufWriter::with_capacity(1 << 20, file), &temp.path);
            self.output = Some((temp, handle));
            Output::File(sink)
        } else {
            Output::Discard
        };
        let mut v = Verifier::new(sink, true);
        v.update(first)?;
        self.verifier = Some(v);
        Ok(())
    }

    /// Another handle on the file the snapshot is being written to: the inflated
    /// output, or for a raw object `landed` (the landed file is the snapshot).
    fn snapshot_file(&self, landed: &File) -> Option<File> {
        let file = self.output.as_ref().map_or(landed, |(_, f)| f);
        file.try_clone().ok()
    }

    /// What verification found and, for a gzip object, the inflated snapshot's
    /// temporary file and writer.
    #[allow(clippy::type_complexity)]
    fn finish(mut self) -> Result<(SnapshotInfo, Option<(TempFile, BufWriter<File>)>)> {
        let v = match self.verifier.take() {
            Some(v) => v,
            None => {
                // Fewer than two bytes: not a snapshot, as verification says.
                let mut v = Verifier::new(Output::Discard, true);
                v.update(&self.head)?;
                v
            }
        };
        let (info, sink) = v.finish()?;
        match (sink, self.output.take()) {
            (Output::File(w), Some((temp, _))) => Ok((info, Some((temp, w.into_inner())))),
            _ => Ok((info, None)),
        }
    }
}

/// Where verified bytes go: nowhere for a raw object (it is already in the file),
/// the output file for an inflated one.
enum Output {
    Discard,
    File(NamedSink<BufWriter<File>>),
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Output::Discard => Ok(buf.len()),
            Output::File(w) => w.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Output::Discard => Ok(()),
            Output::File(w) => w.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Discard => Ok(()),
            Output::File(w) => w.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::snapshot::tests::{gzip, synthetic};

    /// Lands `object` cut into `range`-sized ranges of `chunk`-sized chunks,
    /// the ranges sent in `order`.
    fn land_in(
        dir: &Path,
        object: &[u8],
        range: usize,
        chunk: usize,
        order: &[usize],
    ) -> Result<(Landed, PathBuf)> {
        land_with(dir, object, (range, chunk), order, Decryption::default())
    }

    fn land_with(
        dir: &Path,
        object: &[u8],
        (range, chunk): (usize, usize),
        order: &[usize],
        decrypt: Decryption,
    ) -> Result<(Landed, PathBuf)> {
        let (tx, rx) = mpsc::channel(object.len() / chunk + order.len() + 1);
        for &i in order {
            let start = i * range;
            let part = &object[start..object.len().min(start + range)];
            for (k, c) in part.chunks(chunk).enumerate() {
                let at = (start + k * chunk) as u64;
                tx.try_send((at, vec![Bytes::copy_from_slice(c)])).unwrap();
            }
        }
        drop(tx);
        let dest = dir.join("out.db");
        let plan = Plan {
            dest: dest.clone(),
            size: object.len() as u64,
            range: range as u64,
            progress: Progress::new("downloading", None, std::time::Duration::from_secs(3600)),
            decrypt,
        };
        land(plan, rx).map(|l| (l, dest))
    }

    #[test]
    fn ranges_in_any_order_land_verified() {
        let db = synthetic(40);
        for object in [db.clone(), gzip(&db)] {
            let n = object.len().div_ceil(20_000);
            let mut order: Vec<usize> = (0..n).rev().collect();
            order.swap(0, n / 2);
            let dir = tempfile::tempdir().unwrap();
            let (landed, dest) = land_in(dir.path(), &object, 20_000, 3_000, &order).unwrap();
            assert_eq!(landed.received, object.len() as u64);
            assert_eq!(landed.info.gzip, object != db);
            let sha = hex::encode(crate::base::digest::Sha256::digest(&object));
            assert_eq!(landed.info.input_sha256.as_deref(), Some(sha.as_str()));
            landed.persist(&dest).unwrap();
            assert_eq!(std::fs::read(&dest).unwrap(), db);
            let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
            assert_eq!(left.len(), 1, "only the output is left: {left:?}");
        }
    }

    #[test]
    fn a_gap_or_corruption_lands_nothing() {
        let db = synthetic(10);
        let dir = tempfile::tempdir().unwrap();
        let n = db.len().div_ceil(8192);
        let missing: Vec<usize> = (0..n).filter(|&i| i != 1).collect();
        let e = land_in(dir.path(), &db, 8192, 1000, &missing)
            .err()
            .unwrap();
        assert!(
            matches!(e, Error::Data(ref m) if m.contains("ended after 8192 of")),
            "{e}"
        );
        let mut bad = db.clone();
        bad[9000] ^= 1;
        let all: Vec<usize> = (0..n).collect();
        let e = land_in(dir.path(), &bad, 8192, 1000, &all).err().unwrap();
        assert!(
            matches!(e, Error::Data(ref m) if m.contains("trailer")),
            "{e}"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn an_encrypted_object_lands_decrypted_and_verified_or_not_at_all() {
        use std::io::Write as _;
        let key = age::x25519::Identity::generate();
        let dir = tempfile::tempdir().unwrap();
        let recipients = dir.path().join("recipients");
        std::fs::write(&recipients, key.to_public().to_string()).unwrap();
        let recipients = encrypt::Recipients::parse(None, Some((&recipients, "F")))
            .unwrap()
            .unwrap();
        let keyfile = dir.path().join("key");
        let secret = key.to_string();
        std::fs::write(&keyfile, age::secrecy::ExposeSecret::expose_secret(&secret)).unwrap();
        let how = |files: &[PathBuf]| Decryption {
            identities: encrypt::Identities::from_files(files, "DECRYPT_IDENTITY_FILE").unwrap(),
            var: "DECRYPT_IDENTITY_FILE".into(),
            recorded: Some("0123456789abcdef".into()),
        };
        let db = synthetic(200);
        for plain in [db.clone(), gzip(&db)] {
            let mut w = recipients.encrypt(Vec::new()).unwrap();
            w.write_all(&plain).unwrap();
            let object = w.finish().unwrap();
            let n = object.len().div_ceil(20_000);
            let order: Vec<usize> = (0..n).rev().collect();
            let (landed, dest) = land_with(
                dir.path(),
                &object,
                (20_000, 3_000),
                &order,
                how(std::slice::from_ref(&keyfile)),
            )
            .unwrap();
            let sha = hex::encode(crate::base::digest::Sha256::digest(&object));
            assert_eq!(landed.info.input_sha256.as_deref(), Some(sha.as_str()));
            assert_eq!(landed.info.input_bytes, object.len() as u64);
            landed.persist(&dest).unwrap();
            assert_eq!(std::fs::read(&dest).unwrap(), db);
            std::fs::remove_file(&dest).unwrap();

            let all: Vec<usize> = (0..n).collect();
            let e = land_with(dir.path(), &object, (20_000, 3_000), &all, how(&[]))
                .err()
                .unwrap();
            assert_eq!(e.exit_code(), 78, "{e}");
            assert!(e.to_string().contains("0123456789abcdef"), "{e}");
            let mut bad = object.clone();
            let at = bad.len() / 2;
            bad[at] ^= 1;
            let e = land_with(
                dir.path(),
                &bad,
                (20_000, 3_000),
                &all,
                how(std::slice::from_ref(&keyfile)),
            )
            .err()
            .unwrap();
            assert_eq!(e.exit_code(), 65, "{e}");
            let names: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names.len(), 2, "only the key files are left: {names:?}");
        }
    }

    #[test]
    fn contiguous_follows_complete_ranges() {
        let mut b = Book::new(10, 4); // ranges [0,4) [4,8) [8,10)
        assert!(b.fits(4, 4));
        b.record(4, 4);
        assert_eq!(b.contiguous, 0, "a gap at 0");
        assert!(b.fits(0, 2) && !b.fits(2, 1));
        b.record(0, 2);
        assert_eq!(
            b.contiguous, 2,
            "only to the end of the first range's bytes"
        );
        b.record(2, 2);
        assert_eq!(b.contiguous, 8, "the first range completes into the second");
        assert!(!b.fits(8, 3), "past the object's end");
        assert!(!b.fits(9, 1), "not where the range's bytes continue");
        b.record(8, 2);
        assert_eq!(b.contiguous, 10);
        assert!(!b.fits(10, 1));
        assert_eq!(b.received, 10);
    }
}
