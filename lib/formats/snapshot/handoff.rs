//! Decompressed bytes carried to a second thread, where the trailer check and
//! the sink run, so inflating and hashing use two cores.

use std::io::{self, Write};

use super::Stop;
use super::trailer::{TrailerCheck, is_bolt_magic};

/// Bytes handed to the checking thread at a time.
const HANDOFF_BATCH: usize = 1 << 20;

/// Carries decompressed bytes to a thread that runs the trailer check and the
/// sink, so inflating and hashing (each about a second per GiB) use two cores.
/// At most four batches are in memory.
pub(super) struct Handoff<W: Write> {
    /// The first 20 decompressed bytes, checked here: a batch reaches the
    /// checking thread only once it is full.
    first: Vec<u8>,
    batch: Vec<u8>,
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    worker: Option<std::thread::JoinHandle<(TrailerCheck<W>, io::Result<()>)>>,
}

impl<W: Write + Send + 'static> Handoff<W> {
    pub(super) fn new(mut check: TrailerCheck<W>) -> Self {
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

    pub(super) fn send_batch(&mut self) -> io::Result<()> {
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
    pub(super) fn finish(mut self) -> io::Result<TrailerCheck<W>> {
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
