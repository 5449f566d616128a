//! The silent dispatch scheduler: bounded, never awaited by the primary path, and fully counted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use mirror_core::{ChatRequest, MirrorCopy};
use serde::Serialize;
use tokio::sync::mpsc;

/// Why a silent copy was not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// The queue was full.
    QueueFull,
    /// Sampling left it out.
    SampledOut,
    /// The caller opted this request out.
    OptedOut,
    /// Mirroring is switched off router-wide.
    SwitchedOff,
    /// The silent group had its `max_mirrors_per_minute` this minute (across instances that share
    /// state).
    RateCapped,
    /// The router shut down before it ran or finished.
    Shutdown,
}

/// Counters of silent mirroring, readable at any time.
///
/// `mirrored` counts every silent copy a primary call was eligible for (one per target).
/// Every copy ends in exactly one of `completed`, `failed` or a `dropped_*` counter, and is `in
/// flight` (queued or running) until then, so `mirrored = completed + failed + dropped + in_flight`.
///
/// Counters are atomics and nothing on the primary path takes a lock. Every move of a copy between
/// counters is one update bracketed by two more atomics, `begun` and `ended`, so a reader can tell
/// whether an update was under way while it read: [`MirrorStats::snapshot`] retries until it read with
/// none under way, which makes every snapshot consistent (balanced), even while copies move.
#[derive(Debug, Default)]
pub struct MirrorStats {
    begun: AtomicU64,
    ended: AtomicU64,
    counts: Counts,
}

/// One atomic per field of [`MirrorSnapshot`].
#[derive(Debug, Default)]
struct Counts {
    mirrored: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_sampled_out: AtomicU64,
    dropped_opted_out: AtomicU64,
    dropped_switched_off: AtomicU64,
    dropped_rate_capped: AtomicU64,
    dropped_shutdown: AtomicU64,
    queued: AtomicU64,
    running: AtomicU64,
}

impl Counts {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::SeqCst);
    }

    fn sub(counter: &AtomicU64) {
        counter.fetch_sub(1, Ordering::SeqCst);
    }

    fn count_drop(&self, reason: DropReason) {
        Counts::add(match reason {
            DropReason::QueueFull => &self.dropped_queue_full,
            DropReason::SampledOut => &self.dropped_sampled_out,
            DropReason::OptedOut => &self.dropped_opted_out,
            DropReason::SwitchedOff => &self.dropped_switched_off,
            DropReason::RateCapped => &self.dropped_rate_capped,
            DropReason::Shutdown => &self.dropped_shutdown,
        });
    }

    fn read(&self) -> MirrorSnapshot {
        let load = |counter: &AtomicU64| counter.load(Ordering::SeqCst);
        MirrorSnapshot {
            mirrored: load(&self.mirrored),
            completed: load(&self.completed),
            failed: load(&self.failed),
            dropped_queue_full: load(&self.dropped_queue_full),
            dropped_sampled_out: load(&self.dropped_sampled_out),
            dropped_opted_out: load(&self.dropped_opted_out),
            dropped_switched_off: load(&self.dropped_switched_off),
            dropped_rate_capped: load(&self.dropped_rate_capped),
            dropped_shutdown: load(&self.dropped_shutdown),
            queued: load(&self.queued),
            running: load(&self.running),
        }
    }
}

/// A point-in-time copy of [`MirrorStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MirrorSnapshot {
    /// Silent copies a primary call was eligible for.
    pub mirrored: u64,
    /// Silent calls that returned a response.
    pub completed: u64,
    /// Silent calls that failed after their retries and fallbacks.
    pub failed: u64,
    /// Dropped because the queue was full.
    pub dropped_queue_full: u64,
    /// Dropped by sampling.
    pub dropped_sampled_out: u64,
    /// Dropped because the caller opted out.
    pub dropped_opted_out: u64,
    /// Dropped because mirroring was switched off.
    pub dropped_switched_off: u64,
    /// Dropped because the silent group reached `max_mirrors_per_minute`.
    pub dropped_rate_capped: u64,
    /// Dropped at shutdown.
    pub dropped_shutdown: u64,
    /// Waiting in the queue.
    pub queued: u64,
    /// Running now.
    pub running: u64,
}

impl MirrorSnapshot {
    /// All drops.
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full
            + self.dropped_sampled_out
            + self.dropped_opted_out
            + self.dropped_switched_off
            + self.dropped_rate_capped
            + self.dropped_shutdown
    }

    /// Queued plus running.
    pub fn in_flight(&self) -> u64 {
        self.queued + self.running
    }

    /// Whether `mirrored = completed + failed + dropped + in_flight`.
    pub fn is_balanced(&self) -> bool {
        self.mirrored == self.completed + self.failed + self.dropped() + self.in_flight()
    }
}

impl MirrorStats {
    /// Reads the counters: a consistent snapshot, balanced at every moment.
    ///
    /// Writers never wait for it; it rereads while an update is under way (a few nanoseconds each).
    pub fn snapshot(&self) -> MirrorSnapshot {
        let mut tries: u32 = 0;
        loop {
            // In the one total order of SeqCst operations: if `ended` (read first) equals `begun`
            // (read second), no update was under way when `begun` was read; if `begun` is unchanged
            // after the counters were read, none started meanwhile, so the counters are one state.
            let ended = self.ended.load(Ordering::SeqCst);
            let begun = self.begun.load(Ordering::SeqCst);
            if begun == ended {
                let snapshot = self.counts.read();
                if self.begun.load(Ordering::SeqCst) == begun {
                    return snapshot;
                }
            }
            tries = tries.wrapping_add(1);
            if tries.is_multiple_of(64) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }

    /// Applies one move between counters as a single update.
    fn update(&self, apply: impl FnOnce(&Counts)) {
        self.begun.fetch_add(1, Ordering::SeqCst);
        apply(&self.counts);
        self.ended.fetch_add(1, Ordering::SeqCst);
    }

    /// A copy was eligible and is dropped at once.
    pub(crate) fn mirrored_and_dropped(&self, reason: DropReason) {
        self.update(|counts| {
            Counts::add(&counts.mirrored);
            counts.count_drop(reason);
        });
    }
}

/// A silent copy waiting to run.
#[derive(Debug)]
pub(crate) struct MirrorJob {
    pub(crate) copy: MirrorCopy,
}

/// Tracks one queued copy; whatever happens to it, exactly one terminal counter is bumped.
#[derive(Debug)]
pub(crate) struct JobTicket {
    stats: Arc<MirrorStats>,
    state: TicketState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TicketState {
    Queued,
    Running,
    Done,
}

/// How a copy left the queue or the running set.
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Completed,
    Failed,
    Dropped(DropReason),
}

impl JobTicket {
    /// A copy accepted into the queue: counted as mirrored and queued in one step.
    fn queued(stats: &Arc<MirrorStats>) -> Self {
        stats.update(|counts| {
            Counts::add(&counts.mirrored);
            Counts::add(&counts.queued);
        });
        JobTicket {
            stats: Arc::clone(stats),
            state: TicketState::Queued,
        }
    }

    pub(crate) fn start(&mut self) {
        if self.state == TicketState::Queued {
            self.stats.update(|counts| {
                Counts::sub(&counts.queued);
                Counts::add(&counts.running);
            });
            self.state = TicketState::Running;
        }
    }

    pub(crate) fn finish(mut self, succeeded: bool) {
        self.end(if succeeded {
            Outcome::Completed
        } else {
            Outcome::Failed
        });
    }

    fn end(&mut self, outcome: Outcome) {
        let gauge = match self.state {
            TicketState::Queued => |counts: &Counts| Counts::sub(&counts.queued),
            TicketState::Running => |counts: &Counts| Counts::sub(&counts.running),
            TicketState::Done => return,
        };
        self.stats.update(|counts| {
            gauge(counts);
            match outcome {
                Outcome::Completed => Counts::add(&counts.completed),
                Outcome::Failed => Counts::add(&counts.failed),
                Outcome::Dropped(reason) => counts.count_drop(reason),
            }
        });
        self.state = TicketState::Done;
    }
}

impl Drop for JobTicket {
    fn drop(&mut self) {
        // Dropped before it finished: the queue was drained at shutdown, or the task was aborted.
        self.end(Outcome::Dropped(DropReason::Shutdown));
    }
}

/// The queue side of the scheduler, held by the router.
#[derive(Debug)]
pub(crate) struct MirrorQueue {
    sender: mpsc::Sender<(MirrorJob, JobTicket)>,
    pub(crate) stats: Arc<MirrorStats>,
    pub(crate) enabled: AtomicBool,
    pub(crate) closed: AtomicBool,
}

impl MirrorQueue {
    pub(crate) fn new(
        capacity: usize,
        enabled: bool,
    ) -> (Self, mpsc::Receiver<(MirrorJob, JobTicket)>) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let queue = MirrorQueue {
            sender,
            stats: Arc::new(MirrorStats::default()),
            enabled: AtomicBool::new(enabled),
            closed: AtomicBool::new(false),
        };
        (queue, receiver)
    }

    /// Queues a copy without waiting: full or closed means dropped and counted.
    pub(crate) fn offer(&self, job: MirrorJob) {
        if self.closed.load(Ordering::Acquire) {
            self.stats.mirrored_and_dropped(DropReason::Shutdown);
            return;
        }
        // Count it queued before it is visible to the worker, so the gauges never go negative.
        let ticket = JobTicket::queued(&self.stats);
        match self.sender.try_send((job, ticket)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full((_job, mut ticket))) => {
                ticket.end(Outcome::Dropped(DropReason::QueueFull));
            }
            // The ticket's drop counts it as dropped at shutdown.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// Silent copies sent to one silent group this minute, for `max_mirrors_per_minute`: this
/// instance's exactly, the other instances' as of the last sync with Redis.
#[derive(Debug, Default)]
pub(crate) struct MinuteBudget {
    minute: AtomicU64,
    local: AtomicU64,
    remote_minute: AtomicU64,
    remote: AtomicU64,
}

impl MinuteBudget {
    /// Takes one copy from the budget; false when `cap` copies were already sent this minute.
    pub(crate) fn try_take(&self, minute: u64, cap: u64) -> bool {
        let seen = self.minute.load(Ordering::Relaxed);
        if seen != minute
            && self
                .minute
                .compare_exchange(seen, minute, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.local.store(0, Ordering::Relaxed);
        }
        let remote = if self.remote_minute.load(Ordering::Relaxed) == minute {
            self.remote.load(Ordering::Relaxed)
        } else {
            0
        };
        let taken = self.local.fetch_add(1, Ordering::Relaxed) + 1;
        if taken + remote > cap {
            self.local.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Copies this instance sent in `minute`.
    pub(crate) fn local(&self, minute: u64) -> u64 {
        if self.minute.load(Ordering::Relaxed) == minute {
            self.local.load(Ordering::Relaxed)
        } else {
            0
        }
    }

    /// Stores what the other instances sent in `minute`.
    pub(crate) fn set_remote(&self, minute: u64, copies: u64) {
        self.remote.store(copies, Ordering::Relaxed);
        self.remote_minute.store(minute, Ordering::Relaxed);
    }
}

/// Decides whether a request routed to a deployment with rate `rate` is mirrored.
///
/// With a sampling key the decision is deterministic (FNV-1a of the key), so every request of a
/// conversation is decided alike; without one it is random.
pub(crate) fn sampled_in(rate: f64, key: Option<&str>) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate <= 0.0 || rate.is_nan() {
        return false;
    }
    let point = match key {
        Some(key) => {
            let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
            for byte in key.bytes() {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
            // Mix the high bits down so similar keys spread evenly.
            hash ^= hash >> 33;
            hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
            hash ^= hash >> 33;
            #[allow(clippy::cast_precision_loss)]
            let point = (hash >> 11) as f64 / (1u64 << 53) as f64;
            point
        }
        None => fastrand::f64(),
    };
    point < rate
}

/// The sampling key of a request: its `user`, else the configured metadata key's value.
pub(crate) fn sample_key<'a>(
    request: &'a ChatRequest,
    metadata_key: Option<&str>,
) -> Option<&'a str> {
    request.user.as_deref().or_else(|| {
        let key = metadata_key?;
        request.metadata.as_ref()?.get(key)?.as_str()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_sampling_by_key_holds_rate() {
        let rate = 0.3;
        let total = 20_000;
        let hits = (0..total)
            .filter(|i| sampled_in(rate, Some(&format!("user-{i}"))))
            .count();
        // Binomial standard deviation is about 65 here; allow six of them.
        let expected = 6_000;
        assert!(hits.abs_diff(expected) < 400, "{hits} sampled of {total}");
        // The same key always decides the same way.
        for i in 0..100 {
            let key = format!("conversation-{i}");
            let first = sampled_in(rate, Some(&key));
            assert!((0..10).all(|_| sampled_in(rate, Some(&key)) == first));
        }
    }

    #[test]
    fn minute_budget_holds_cap_with_remote_usage_and_rolls_over() {
        let budget = MinuteBudget::default();
        assert_eq!((0..10).filter(|_| budget.try_take(7, 4)).count(), 4);
        assert_eq!(budget.local(7), 4);
        // Other instances sent two in the next minute: two are left for this one.
        budget.set_remote(8, 2);
        assert_eq!((0..10).filter(|_| budget.try_take(8, 4)).count(), 2);
        assert_eq!(budget.local(8), 2);
        // Their count of an older minute does not apply.
        assert_eq!((0..10).filter(|_| budget.try_take(9, 4)).count(), 4);
    }

    #[test]
    fn random_sampling_holds_rate() {
        let hits = (0..20_000).filter(|_| sampled_in(0.5, None)).count();
        assert!(hits.abs_diff(10_000) < 500, "{hits}");
        assert!(!sampled_in(0.0, None));
        assert!(sampled_in(1.0, Some("anything")));
    }
}
