//! Reused part buffers: a part read from a file is handed out as [`Bytes`] whose
//! buffer goes back to the [`Buffers`] it came from when the last clone of it is
//! dropped (the request that sent it is done). A store of many parts then faults
//! in and zero-fills `kept` buffers once, instead of one fresh allocation per
//! part, and its peak memory does not depend on how the allocator returns freed
//! blocks.

use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// Buffers handed out and returned; at most `kept` are kept when returned.
#[derive(Clone)]
pub struct Buffers {
    free: Arc<Mutex<Vec<Vec<u8>>>>,
    kept: usize,
}

impl Buffers {
    /// A set that keeps at most `kept` returned buffers.
    pub fn new(kept: usize) -> Buffers {
        Buffers {
            free: Arc::new(Mutex::new(Vec::new())),
            kept,
        }
    }

    /// A buffer of exactly `len` bytes: a returned one if any (its old bytes
    /// still in it; the caller overwrites them all), else a new zeroed one.
    pub fn take(&self, len: usize) -> Vec<u8> {
        let reused = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match reused {
            Some(mut buf) if buf.capacity() >= len => {
                // `resize` writes only past the old length: a reused buffer
                // of a full-size part is not zero-filled again.
                buf.resize(len, 0);
                buf
            }
            _ => vec![0u8; len],
        }
    }

    /// `buf` as bytes that come back to this set when dropped.
    pub fn hand_out(&self, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Lent {
            buf,
            home: self.clone(),
        })
    }

    /// How many returned buffers are waiting to be reused.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn give_back(&self, buf: Vec<u8>) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < self.kept {
            free.push(buf);
        }
    }
}

/// A buffer lent out as [`Bytes`]; returned to its set on drop.
struct Lent {
    buf: Vec<u8>,
    home: Buffers,
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        self.home.give_back(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_part_comes_back_and_is_reused_without_a_new_allocation() {
        let buffers = Buffers::new(2);
        let mut first = buffers.take(8);
        first.copy_from_slice(b"abcdefgh");
        let at = first.as_ptr();
        let bytes = buffers.hand_out(first);
        let clone = bytes.clone();
        assert_eq!(&bytes[..], b"abcdefgh");
        drop(bytes);
        assert_eq!(buffers.waiting(), 0, "a clone still holds it");
        drop(clone);
        assert_eq!(buffers.waiting(), 1);
        let again = buffers.take(5);
        assert_eq!(again.as_ptr(), at, "the same buffer, reused");
        assert_eq!(again.len(), 5);
    }

    #[test]
    fn no_more_than_kept_are_kept() {
        let buffers = Buffers::new(1);
        let parts: Vec<Bytes> = (0..3).map(|_| buffers.hand_out(buffers.take(4))).collect();
        drop(parts);
        assert_eq!(buffers.waiting(), 1);
    }
}
