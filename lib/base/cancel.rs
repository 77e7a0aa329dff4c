//! Cancellation and deadlines, passed *into* library calls.
//!
//! The binaries turn SIGTERM/SIGINT into a [`Shutdown`] trigger; the library
//! watches it (and the operation's deadline) at every await point that can take
//! long, and cleans up (aborts multipart uploads, removes temp files) before it
//! returns [`Error::Cancelled`] or [`Error::Deadline`]. The library never exits
//! the process.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::base::error::{Error, Result, StopReason};

/// The receiving half: cheap to clone, handed to library calls.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<Option<StopReason>>,
}

/// The sending half, kept by whoever watches the signals.
#[derive(Debug)]
pub struct ShutdownTrigger {
    tx: watch::Sender<Option<StopReason>>,
}

impl Shutdown {
    /// A new pair.
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(None);
        (ShutdownTrigger { tx }, Shutdown { rx })
    }

    /// A shutdown that never fires (tests, library users without signals).
    pub fn never() -> Shutdown {
        let (trigger, shutdown) = Shutdown::new();
        // Keep the sender alive forever so `changed()` never reports a closed channel.
        std::mem::forget(trigger);
        shutdown
    }

    /// The reason, if a stop was already requested.
    pub fn requested(&self) -> Option<StopReason> {
        *self.rx.borrow()
    }

    /// Resolves when a stop is requested (never, if the trigger is dropped unused).
    pub async fn wait(&self) -> StopReason {
        let mut rx = self.rx.clone();
        loop {
            if let Some(reason) = *rx.borrow_and_update() {
                return reason;
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }
}

impl ShutdownTrigger {
    /// Asks every holder of the matching [`Shutdown`] to stop.
    pub fn stop(&self, reason: StopReason) {
        self.tx.send_replace(Some(reason));
    }
}

/// An operation's time budget, fixed at its start.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
    limit: Duration,
}

impl Deadline {
    /// A deadline `limit` from now (configuration caps `limit`; an absurd one
    /// still never overflows: it saturates at about a year).
    pub fn after(limit: Duration) -> Deadline {
        let now = Instant::now();
        let at = now
            .checked_add(limit)
            .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600));
        Deadline { at, limit }
    }

    /// Time left, zero once passed.
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// `Err` when a stop was requested or the deadline has passed: for loops on
    /// blocking threads, which cannot be dropped mid-step as a future can.
    pub fn check(&self, shutdown: &Shutdown, what: &str) -> Result<()> {
        if let Some(reason) = shutdown.requested() {
            return Err(Error::Cancelled(reason));
        }
        if self.remaining().is_zero() {
            return Err(Error::Deadline {
                what: what.to_string(),
                limit: self.limit,
            });
        }
        Ok(())
    }

    /// Runs `fut` until it finishes, the deadline passes, or a stop is requested.
    /// `what` names the step for the error message.
    pub async fn run<T>(
        &self,
        shutdown: &Shutdown,
        what: &str,
        fut: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        tokio::select! {
            biased;
            reason = shutdown.wait() => Err(Error::Cancelled(reason)),
            _ = tokio::time::sleep_until(self.at) => Err(Error::Deadline {
                what: what.to_string(),
                limit: self.limit,
            }),
            result = fut => result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stop_interrupts_a_pending_step() {
        let (trigger, shutdown) = Shutdown::new();
        trigger.stop(StopReason::Terminate);
        let deadline = Deadline::after(Duration::from_secs(3600));
        let result: Result<()> = deadline
            .run(&shutdown, "waiting", std::future::pending())
            .await;
        assert!(matches!(
            result,
            Err(Error::Cancelled(StopReason::Terminate))
        ));
        assert_eq!(shutdown.requested(), Some(StopReason::Terminate));
    }

    #[tokio::test(start_paused = true)]
    async fn a_passed_deadline_names_the_step() {
        let deadline = Deadline::after(Duration::from_secs(5));
        let result: Result<()> = deadline
            .run(
                &Shutdown::never(),
                "uploading parts",
                std::future::pending(),
            )
            .await;
        let err = result.unwrap_err();
        assert_eq!(err.exit_code(), 75);
        assert!(err.to_string().contains("uploading parts"), "{err}");
    }

    #[tokio::test]
    async fn a_finished_step_returns_its_value() {
        let deadline = Deadline::after(Duration::from_secs(5));
        let v = deadline
            .run(&Shutdown::never(), "x", async { Ok(7) })
            .await
            .unwrap();
        assert_eq!(v, 7);
    }
}
