//! A fixed set of worker threads running one function over jobs, handing the
//! results back in the order the jobs were given. The caller bounds the jobs in
//! flight (inputs queued or being worked on, outputs not yet taken) with
//! [`Ordered::is_full`], so memory is bounded by that count times a job's size.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The CPUs this process may use: `std::thread::available_parallelism`, which on
/// Linux honours the affinity mask and a cgroup's CPU quota (cgroup v2 `cpu.max`,
/// v1 `cpu.cfs_quota_us`), not the host's count; 1 when it cannot tell.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

type Job<I, O> = (I, SyncSender<O>);

/// Workers and the results owed, oldest first.
pub struct Ordered<I: Send + 'static, O: Send + 'static> {
    jobs: Option<Sender<Job<I, O>>>,
    owed: VecDeque<Receiver<O>>,
    limit: usize,
    workers: Vec<JoinHandle<()>>,
}

/// A worker panicked on the job, or the pool is gone.
#[derive(Debug)]
pub struct WorkerGone;

impl<I: Send + 'static, O: Send + 'static> Ordered<I, O> {
    /// `threads` workers (at least one) running `work`; at most `limit` jobs
    /// (at least one) are in flight when the caller heeds [`Ordered::is_full`].
    pub fn new<F>(threads: usize, limit: usize, work: F) -> Self
    where
        F: Fn(I) -> O + Send + Sync + 'static,
    {
        let (tx, rx) = channel::<Job<I, O>>();
        let rx = Arc::new(Mutex::new(rx));
        let work = Arc::new(work);
        let workers = (0..threads.max(1))
            .map(|_| {
                let (rx, work) = (Arc::clone(&rx), Arc::clone(&work));
                std::thread::spawn(move || {
                    loop {
                        let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok((input, back)) = next else { return };
                        // A panic drops `back`: that job's result reads as WorkerGone,
                        // and the worker goes on with the next.
                        let done =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(input)));
                        if let Ok(out) = done {
                            let _ = back.send(out);
                        }
                    }
                })
            })
            .collect();
        Ordered {
            jobs: Some(tx),
            owed: VecDeque::new(),
            limit: limit.max(1),
            workers,
        }
    }

    /// `limit` jobs are in flight: take a result before submitting more.
    pub fn is_full(&self) -> bool {
        self.owed.len() >= self.limit
    }

    /// Jobs whose results have not been taken.
    pub fn in_flight(&self) -> usize {
        self.owed.len()
    }

    /// Queues a job (its result comes after those of every earlier job).
    pub fn submit(&mut self, input: I) -> Result<(), WorkerGone> {
        let (back, result) = sync_channel(1);
        let jobs = self.jobs.as_ref().ok_or(WorkerGone)?;
        jobs.send((input, back)).map_err(|_| WorkerGone)?;
        self.owed.push_back(result);
        Ok(())
    }

    /// The oldest job's result, waited for; None when none is owed.
    pub fn take_oldest(&mut self) -> Option<Result<O, WorkerGone>> {
        let result = self.owed.pop_front()?;
        Some(result.recv().map_err(|_| WorkerGone))
    }
}

impl<I: Send + 'static, O: Send + 'static> Drop for Ordered<I, O> {
    fn drop(&mut self) {
        // Workers end when the queue closes; results not taken are dropped.
        self.jobs = None;
        self.owed.clear();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_order_and_in_flight_is_bounded() {
        let mut pool = Ordered::new(3, 4, |n: u64| {
            // Later jobs finish first.
            std::thread::sleep(std::time::Duration::from_millis(20 - n % 4 * 5));
            n * n
        });
        let mut got = Vec::new();
        for n in 0..20 {
            while pool.is_full() {
                got.push(pool.take_oldest().unwrap().unwrap());
            }
            assert!(pool.in_flight() < 4);
            pool.submit(n).unwrap();
        }
        while let Some(r) = pool.take_oldest() {
            got.push(r.unwrap());
        }
        assert_eq!(got, (0..20).map(|n| n * n).collect::<Vec<_>>());
    }

    #[test]
    fn a_panicking_worker_is_reported_not_hung() {
        let mut pool = Ordered::new(1, 2, |n: u32| {
            assert!(n != 1, "job 1 fails");
            n
        });
        pool.submit(0).unwrap();
        pool.submit(1).unwrap();
        assert_eq!(pool.take_oldest().unwrap().unwrap(), 0);
        assert!(pool.take_oldest().unwrap().is_err());
        pool.submit(2).unwrap();
        assert_eq!(
            pool.take_oldest().unwrap().unwrap(),
            2,
            "the worker goes on"
        );
    }

    #[test]
    fn cpus_is_at_least_one() {
        assert!(cpus() >= 1);
    }
}
