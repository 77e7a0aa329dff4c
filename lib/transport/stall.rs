//! Stalled uploads, told apart from slow ones.
//!
//! reqwest's `read_timeout` starts when a request is sent and is not reset
//! while its body goes out (it waits for the answer's head): an upload that
//! takes longer than it fails however steadily it moves. So upload requests go
//! on a client without one, and a [`Watch`] takes its place. The body records
//! each chunk the connection takes; the request is stalled when `limit` passes
//! with no chunk taken while one was ready. Time spent waiting for our own side
//! (the file's reader, the verification gate that holds the last chunk) is not
//! a stall: the connection asked and we had nothing yet.
//!
//! Once the last chunk is taken, the kernel may still hold MiBs of it to send
//! (socket buffers grow to 4 MiB and more), at the link's pace: the answer may
//! take as long as the body took, plus `limit`, before the request is stalled.
//!
//! A chunk is at most 1 MiB, so a connection is judged stalled when it moves
//! less than one chunk in `limit` (30 s by default, `STALL_TIMEOUT`): slower
//! than about 35 KiB/s.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Instant;

/// The default of `STALL_TIMEOUT`.
pub const DEFAULT_STALL: Duration = Duration::from_secs(30);

/// The progress of one request's body, and the limit of its silences.
#[derive(Clone)]
pub(crate) struct Watch {
    state: Arc<State>,
    limit: Duration,
}

struct State {
    origin: Instant,
    /// When the connection last took a chunk, in milliseconds since `origin`.
    last: AtomicU64,
    /// When the body's last byte was taken (ms since `origin`); `u64::MAX`
    /// before.
    ended: AtomicU64,
    /// The connection asked for a chunk and ours was not ready yet.
    ours: AtomicBool,
}

/// The request made no progress for the watch's limit.
#[derive(Debug)]
pub(crate) struct Stalled(pub(crate) Duration);

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the connection made no progress for {} s (STALL_TIMEOUT)",
            self.0.as_secs()
        )
    }
}

impl std::error::Error for Stalled {}

impl Watch {
    /// A watch on a request about to be sent; its clock starts now.
    pub(crate) fn new(limit: Duration) -> Watch {
        Watch {
            state: Arc::new(State {
                origin: Instant::now(),
                last: AtomicU64::new(0),
                ended: AtomicU64::new(u64::MAX),
                ours: AtomicBool::new(false),
            }),
            limit,
        }
    }

    /// `body` (`len` bytes), recording on this watch each chunk the
    /// connection takes.
    pub(crate) fn body(&self, body: reqwest::Body, len: u64) -> reqwest::Body {
        reqwest::Body::wrap(Watched {
            inner: body,
            state: self.state.clone(),
            left: len,
        })
    }

    /// Runs `request` (the sending of a body made by [`Watch::body`] and the
    /// wait for its answer) until it finishes or stalls.
    pub(crate) async fn guard<F: Future>(&self, request: F) -> Result<F::Output, Stalled> {
        let mut request = std::pin::pin!(request);
        loop {
            let Some(left) = self.quiet_left() else {
                return Err(Stalled(self.limit));
            };
            tokio::select! {
                out = &mut request => return Ok(out),
                _ = tokio::time::sleep(left) => {}
            }
        }
    }

    /// How long the request may still be silent; `None` once it has been
    /// silent for the limit. While it waits on our side, the whole limit
    /// (checked again then).
    fn quiet_left(&self) -> Option<Duration> {
        if self.state.ours.load(Ordering::Acquire) {
            return Some(self.limit);
        }
        let now = self.state.origin.elapsed();
        let allowed = match self.state.ended.load(Ordering::Acquire) {
            u64::MAX => self.limit,
            ended => self.limit + Duration::from_millis(ended),
        };
        let last = Duration::from_millis(self.state.last.load(Ordering::Acquire));
        allowed
            .checked_sub(now.saturating_sub(last))
            .filter(|d| !d.is_zero())
    }
}

impl State {
    /// Records a chunk taken now; returns now.
    fn touch(&self) -> u64 {
        let now = self.origin.elapsed().as_millis() as u64;
        self.last.store(now, Ordering::Release);
        now
    }
}

/// The size of the pieces [`pieces`] cuts a body into.
const PIECE: usize = 1 << 20;

/// A body of `bytes` in 1 MiB pieces (no copy): a watch sees each piece go,
/// where one whole part would be one event however long it took.
pub(crate) fn pieces(bytes: Bytes) -> reqwest::Body {
    let stream = futures::stream::unfold(bytes, |mut rest| async move {
        if rest.is_empty() {
            return None;
        }
        let piece = rest.split_to(rest.len().min(PIECE));
        Some((Ok::<_, std::io::Error>(piece), rest))
    });
    reqwest::Body::wrap_stream(stream)
}

/// A body whose polls are recorded on a [`Watch`].
struct Watched {
    inner: reqwest::Body,
    state: Arc<State>,
    /// Bytes not taken yet.
    left: u64,
}

impl Body for Watched {
    type Data = Bytes;
    type Error = reqwest::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, reqwest::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match polled {
            Poll::Pending => self.state.ours.store(true, Ordering::Release),
            Poll::Ready(ref frame) => {
                let taken = match frame {
                    Some(Ok(f)) => f.data_ref().map_or(0, |d| d.len() as u64),
                    _ => 0,
                };
                self.left = self.left.saturating_sub(taken);
                // Touched before `ours` is cleared: the watch never sees an
                // old time with `ours` false.
                let now = self.state.touch();
                if self.left == 0 || frame.is_none() {
                    self.state.ended.store(now, Ordering::Release);
                }
                self.state.ours.store(false, Ordering::Release);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body that yields a chunk whenever the test sends one.
    fn fed() -> (tokio::sync::mpsc::Sender<Bytes>, reqwest::Body) {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
        });
        (tx, reqwest::Body::wrap_stream(stream))
    }

    async fn next(body: &mut reqwest::Body) -> Option<Bytes> {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await?;
        frame.ok()?.into_data().ok()
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_keeps_moving_is_never_stalled() {
        let watch = Watch::new(Duration::from_secs(30));
        let (tx, body) = fed();
        let mut body = watch.body(body, 10);
        let request = async {
            // 10 chunks, 20 s apart: 200 s in all, each gap under the limit.
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_secs(20)).await;
                tx.send(Bytes::from_static(b"x")).await.unwrap();
                next(&mut body).await.unwrap();
            }
            "answered"
        };
        assert_eq!(watch.guard(request).await.unwrap(), "answered");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_takes_nothing_is_stalled_after_the_limit() {
        let watch = Watch::new(Duration::from_secs(30));
        let (tx, body) = fed();
        let mut body = watch.body(body, 10);
        tx.send(Bytes::from_static(b"x")).await.unwrap();
        let start = tokio::time::Instant::now();
        let request = async {
            next(&mut body).await.unwrap();
            // The connection never asks for the next chunk.
            std::future::pending::<()>().await
        };
        let Err(stalled) = watch.guard(request).await else {
            panic!("a silent connection was not stalled");
        };
        assert_eq!(stalled.0, Duration::from_secs(30));
        assert!(start.elapsed() >= Duration::from_secs(30));
        assert!(start.elapsed() < Duration::from_secs(31));
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_on_our_own_side_is_not_a_stall() {
        let watch = Watch::new(Duration::from_secs(30));
        let (tx, body) = fed();
        let mut body = watch.body(body, 10);
        let request = async {
            // The connection asks; our chunk comes 100 s later (a slow
            // verification holding the last chunk), then the answer at once.
            let feeder = async {
                tokio::time::sleep(Duration::from_secs(100)).await;
                tx.send(Bytes::from_static(b"x")).await.unwrap();
            };
            let (chunk, ()) = tokio::join!(next(&mut body), feeder);
            chunk.unwrap()
        };
        assert_eq!(
            watch.guard(request).await.unwrap(),
            Bytes::from_static(b"x")
        );
    }

    #[tokio::test]
    async fn pieces_are_at_most_a_mib_and_keep_every_byte() {
        let data: Vec<u8> = (0..(5 * PIECE / 2)).map(|i| i as u8).collect();
        let mut body = pieces(Bytes::from(data.clone()));
        let mut got = Vec::new();
        let mut sizes = Vec::new();
        while let Some(piece) = next(&mut body).await {
            sizes.push(piece.len());
            got.extend_from_slice(&piece);
        }
        assert_eq!(sizes, vec![PIECE, PIECE, PIECE / 2]);
        assert_eq!(got, data);
        assert!(next(&mut pieces(Bytes::new())).await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn the_answer_may_take_as_long_as_the_body_took_plus_the_limit() {
        let watch = Watch::new(Duration::from_secs(5));
        let (tx, body) = fed();
        let mut body = watch.body(body, 2);
        let start = tokio::time::Instant::now();
        let request = async {
            // Two bytes, the second 4 s after the first: the body took 4 s.
            tx.send(Bytes::from_static(b"x")).await.unwrap();
            next(&mut body).await.unwrap();
            tokio::time::sleep(Duration::from_secs(4)).await;
            tx.send(Bytes::from_static(b"y")).await.unwrap();
            next(&mut body).await.unwrap();
            // No answer ever.
            std::future::pending::<()>().await
        };
        assert!(watch.guard(request).await.is_err());
        // Cut 4 + 5 s after the last byte was taken.
        let waited = start.elapsed();
        assert!(waited >= Duration::from_secs(13), "{waited:?}");
        assert!(waited < Duration::from_secs(14), "{waited:?}");
    }
}
