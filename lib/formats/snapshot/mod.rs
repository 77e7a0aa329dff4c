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

mod handoff;
mod inflate;
#[cfg(test)]
pub(crate) mod tests;
mod trailer;

use handoff::Handoff;
use inflate::Inflate;
use trailer::TrailerCheck;

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
    Gzip(Box<Inflate<W>>),
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
                Stage::Gzip(Box::new(Inflate::new(Handoff::new(check))))
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
            Stage::Gzip(d) => (*d)
                .finish()
                .and_then(Handoff::finish)
                .map_err(gzip_error)?,
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

/// Feeds the file at `src` through `v` in 1 MiB reads and finishes it; data errors
/// name the file.
pub fn verify_file<W: Write + Send + 'static>(
    src: &std::path::Path,
    v: Verifier<W>,
) -> Result<(SnapshotInfo, W)> {
    let input = std::fs::File::open(src).map_err(|e| Error::io(src, "cannot open snapshot", e))?;
    verify_reader(input, src, v)
}

/// Verifies the snapshot read from `input` (named `src` in errors), as
/// [`verify_file`]; for callers that have already opened it (a pipe can be
/// opened only once).
pub fn verify_reader<R: io::Read, W: Write + Send + 'static>(
    mut input: R,
    src: &std::path::Path,
    mut v: Verifier<W>,
) -> Result<(SnapshotInfo, W)> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match input.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(src, "cannot read snapshot", e)),
        };
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
