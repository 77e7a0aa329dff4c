//! Request bodies read from the file as they are sent, a chunk at a time, the
//! last chunk held back until the caller's check passes; and a range's SHA-256.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{Gate, LastCheck};
use crate::base::digest::Sha256;
use crate::base::error::{Error, Result};
use crate::base::progress::Progress;

pub(crate) type SharedProgress = Arc<Mutex<Progress>>;

pub(crate) fn shared_progress(size: u64, every: Duration) -> SharedProgress {
    Arc::new(Mutex::new(Progress::new("uploading", Some(size), every)))
}

/// A request body: `len` bytes of the file from `offset`, read on a blocking
/// thread a chunk at a time. With a gate, the last chunk is held back until the
/// gate opens and the last check passes; a closed gate or a read error ends the
/// body early, which aborts the request, and the reason goes to `refusal`.
pub(crate) fn body(
    path: PathBuf,
    (offset, len): (u64, u64),
    (chunk, queued): (usize, usize),
    gate: Option<(Gate, LastCheck)>,
    refusal: Arc<Mutex<Option<String>>>,
    progress: SharedProgress,
) -> reqwest::Body {
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(queued);
    tokio::task::spawn_blocking(move || read_chunks(&path, (offset, len), chunk, &tx));
    struct State {
        rx: mpsc::Receiver<std::io::Result<Bytes>>,
        gate: Option<(Gate, LastCheck)>,
        refusal: Arc<Mutex<Option<String>>>,
        sent: u64,
        len: u64,
        progress: SharedProgress,
    }
    let state = State {
        rx,
        gate,
        refusal,
        sent: 0,
        len,
        progress,
    };
    let stream = futures::stream::unfold(state, |mut s| async move {
        let chunk = match s.rx.recv().await? {
            Ok(chunk) => chunk,
            Err(e) => return Some((Err(e), s)),
        };
        s.sent += chunk.len() as u64;
        if let Some((gate, last)) = &mut s.gate {
            let early = gate.borrow().clone();
            let verdict = match early {
                Some(Err(why)) => Err(why),
                _ if s.sent < s.len => Ok(()),
                _ => match gate.wait_for(Option::is_some).await {
                    Ok(v) => v.clone().expect("waited for a verdict"),
                    Err(_) => Err("the upload was stopped".to_string()),
                }
                .and_then(|()| last()),
            };
            if let Err(why) = verdict {
                *s.refusal.lock().expect("not poisoned") = Some(why.clone());
                return Some((Err(std::io::Error::other(why)), s));
            }
        }
        s.progress
            .lock()
            .expect("not poisoned")
            .add(chunk.len() as u64);
        Some((Ok(chunk), s))
    });
    reqwest::Body::wrap_stream(stream)
}

fn read_chunks(
    path: &Path,
    (offset, len): (u64, u64),
    chunk: usize,
    tx: &mpsc::Sender<std::io::Result<Bytes>>,
) {
    use std::io::{Read, Seek, SeekFrom};
    let opened = std::fs::File::open(path).and_then(|mut f| {
        f.seek(SeekFrom::Start(offset))?;
        Ok(f)
    });
    let mut file = match opened {
        Ok(f) => f,
        Err(e) => {
            let _ = tx.blocking_send(Err(e));
            return;
        }
    };
    let mut left = len;
    while left > 0 {
        let want = (chunk as u64).min(left);
        let mut buf = Vec::with_capacity(want as usize);
        match (&mut file).take(want).read_to_end(&mut buf) {
            Ok(0) => {
                let short = std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!(
                        "{} became shorter while it was being uploaded",
                        path.display()
                    ),
                );
                let _ = tx.blocking_send(Err(short));
                return;
            }
            Ok(n) => left -= n as u64,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        }
        if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
            return;
        }
    }
}

/// SHA-256 (hex) of `len` bytes of the file from `offset`.
pub(super) fn hash_range(path: &Path, offset: u64, len: u64) -> Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file =
        std::fs::File::open(path).map_err(|e| Error::io(path, "cannot open snapshot file", e))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| Error::io(path, "cannot read snapshot file", e))?;
    let mut file = file.take(len);
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::io(path, "cannot read snapshot file", e))?;
        if n == 0 {
            return Ok(hex::encode(hash.finalize()));
        }
        hash.update(&buf[..n]);
    }
}
