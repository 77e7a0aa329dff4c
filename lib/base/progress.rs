//! Progress of long transfers: a log line at a steady interval with bytes done,
//! the total when known, the rate and the time left. Jobs have no TTY, so lines,
//! not a bar.

use std::time::{Duration, Instant};

/// The tracing target of progress events. Set explicitly on each event (not the
/// module path, which moves with the code): the binaries' terminal progress bar
/// picks progress events by it, and `RUST_LOG` directives can name it.
pub const PROGRESS_TARGET: &str = "snapjob::progress";

/// Whether an event is a progress event (what the terminal bar draws).
pub fn is_progress(meta: &tracing::Metadata<'_>) -> bool {
    meta.target() == PROGRESS_TARGET
}

/// Counts bytes and logs every `every` (0: at every update).
#[derive(Debug)]
pub struct Progress {
    what: &'static str,
    total: Option<u64>,
    done: u64,
    started: Instant,
    last: Instant,
    every: Duration,
}

impl Progress {
    /// Starts counting `what` (e.g. "uploading") towards `total` bytes, if known.
    pub fn new(what: &'static str, total: Option<u64>, every: Duration) -> Self {
        let now = Instant::now();
        Progress {
            what,
            total,
            done: 0,
            started: now,
            last: now,
            every,
        }
    }

    /// Adds `n` bytes; logs when the interval has passed.
    pub fn add(&mut self, n: u64) {
        self.done += n;
        if self.last.elapsed() < self.every {
            return;
        }
        self.last = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = self.done as f64 / secs;
        let mib_per_s = round_to(rate / 1048576.0, 1);
        match self.total {
            Some(total) => {
                // Bytes sent again after a retry count twice here: never report
                // more than the whole.
                let bytes = self.done.min(total);
                let eta_s = (total - bytes) as f64 / rate;
                let eta_s = eta_s.round() as u64;
                tracing::info!(target: PROGRESS_TARGET, bytes, total, mib_per_s, eta_s, "{}", self.what);
            }
            None => {
                tracing::info!(target: PROGRESS_TARGET, bytes = self.done, mib_per_s, "{}", self.what)
            }
        }
    }
}

/// `x` rounded to `places` decimals: numbers in JSON log lines, not strings.
pub fn round_to(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (x * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the metadata of every event.
    struct Events(std::sync::Mutex<Vec<&'static tracing::Metadata<'static>>>);

    impl tracing::Subscriber for Events {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            self.0.lock().unwrap().push(event.metadata());
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    #[test]
    fn progress_events_carry_the_target_the_bar_picks() {
        let events = std::sync::Arc::new(Events(Default::default()));
        tracing::subscriber::with_default(events.clone(), || {
            let mut known = Progress::new("uploading", Some(10), Duration::ZERO);
            known.add(4);
            let mut unknown = Progress::new("downloading", None, Duration::ZERO);
            unknown.add(4);
            tracing::info!("an ordinary line");
        });
        let seen = events.0.lock().unwrap();
        assert_eq!(seen.len(), 3, "{seen:?}");
        for meta in &seen[..2] {
            assert_eq!(meta.target(), PROGRESS_TARGET);
            assert!(is_progress(meta));
        }
        assert!(!is_progress(seen[2]), "{:?}", seen[2]);
    }

    #[test]
    fn counts_bytes() {
        let mut p = Progress::new("uploading", Some(10), Duration::from_secs(3600));
        p.add(4);
        p.add(3);
        assert_eq!(p.done, 7);
    }
}
