//! The silent dispatch scheduler: bounded, never awaited by the primary path, and fully counted.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use mirror_core::{ChatRequest, MessageContent, MirrorCopy};
use serde::Serialize;
use tokio::sync::mpsc;

/// Why a silent copy was not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// The queue was full: it held `queue_size` copies, or taking this one would have put more than
    /// `queue_max_bytes` (estimated) in it.
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
    /// The silent group was failing: every one of its deployments was cooling down, or its silent
    /// breaker was open (see [`crate::Router::mirror_stats`] and `docs/mirroring.md`).
    Unhealthy,
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
    /// Estimated bytes of the queued copies; reserved before a copy is made, released when it
    /// leaves the queue.
    queued_bytes: AtomicU64,
    /// Silent groups whose breaker is open (or half-open).
    breakers_open: AtomicU64,
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
    dropped_unhealthy: AtomicU64,
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
            DropReason::Unhealthy => &self.dropped_unhealthy,
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
            dropped_unhealthy: load(&self.dropped_unhealthy),
            dropped_shutdown: load(&self.dropped_shutdown),
            queued: load(&self.queued),
            running: load(&self.running),
            queued_bytes: 0,
            breakers_open: 0,
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
    /// Dropped because the silent group was failing (all deployments cooling down, or its silent
    /// breaker open).
    pub dropped_unhealthy: u64,
    /// Dropped at shutdown.
    pub dropped_shutdown: u64,
    /// Waiting in the queue.
    pub queued: u64,
    /// Running now.
    pub running: u64,
    /// Estimated bytes of the copies waiting in the queue (a gauge; not part of the balance).
    pub queued_bytes: u64,
    /// Silent groups whose breaker is open: their copies are dropped as unhealthy but for a probe
    /// (a gauge; `Router::silent_breakers` names them).
    pub breakers_open: u64,
}

impl MirrorSnapshot {
    /// All drops.
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full
            + self.dropped_sampled_out
            + self.dropped_opted_out
            + self.dropped_switched_off
            + self.dropped_rate_capped
            + self.dropped_unhealthy
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
                let mut snapshot = self.counts.read();
                if self.begun.load(Ordering::SeqCst) == begun {
                    snapshot.queued_bytes = self.queued_bytes.load(Ordering::Relaxed);
                    snapshot.breakers_open = self.breakers_open.load(Ordering::Relaxed);
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

    /// A silent breaker opened (`true`) or closed.
    pub(crate) fn breaker_moved(&self, opened: bool) {
        if opened {
            self.breakers_open.fetch_add(1, Ordering::Relaxed);
        } else {
            self.breakers_open.fetch_sub(1, Ordering::Relaxed);
        }
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
    /// The silent group's index in the router, for its health.
    pub(crate) group: usize,
}

/// Tracks one queued copy; whatever happens to it, exactly one terminal counter is bumped.
#[derive(Debug)]
pub(crate) struct JobTicket {
    stats: Arc<MirrorStats>,
    state: TicketState,
    /// Estimated bytes this copy holds in the queue, released when it leaves the queue.
    bytes: u64,
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
    /// A copy accepted into the queue: counted as mirrored and queued in one step. Its `bytes` are
    /// already reserved.
    fn queued(stats: &Arc<MirrorStats>, bytes: u64) -> Self {
        stats.update(|counts| {
            Counts::add(&counts.mirrored);
            Counts::add(&counts.queued);
        });
        JobTicket {
            stats: Arc::clone(stats),
            state: TicketState::Queued,
            bytes,
        }
    }

    fn release_bytes(&mut self) {
        if self.bytes > 0 {
            self.stats
                .queued_bytes
                .fetch_sub(self.bytes, Ordering::Relaxed);
            self.bytes = 0;
        }
    }

    pub(crate) fn start(&mut self) {
        if self.state == TicketState::Queued {
            self.release_bytes();
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
        self.release_bytes();
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
    max_bytes: u64,
    pub(crate) stats: Arc<MirrorStats>,
    pub(crate) enabled: AtomicBool,
    pub(crate) closed: AtomicBool,
}

impl MirrorQueue {
    pub(crate) fn new(
        capacity: usize,
        max_bytes: u64,
        enabled: bool,
    ) -> (Self, mpsc::Receiver<(MirrorJob, JobTicket)>) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let queue = MirrorQueue {
            sender,
            max_bytes,
            stats: Arc::new(MirrorStats::default()),
            enabled: AtomicBool::new(enabled),
            closed: AtomicBool::new(false),
        };
        (queue, receiver)
    }

    /// Makes room for a copy of about `bytes` before it is made, so a copy that would be dropped
    /// is never made. `None` means dropped, and already counted: shut down, or the queue is full by
    /// count or by bytes.
    ///
    /// Only atomics: the count check reads the channel's free slots (`try_send` in
    /// [`MirrorQueue::send`] still decides), the byte check adds first and takes back on overflow,
    /// so admitted copies never hold more than `max_bytes` together.
    pub(crate) fn reserve(&self, bytes: u64) -> Option<JobTicket> {
        if self.closed.load(Ordering::Acquire) {
            self.stats.mirrored_and_dropped(DropReason::Shutdown);
            return None;
        }
        if self.sender.capacity() == 0 {
            self.stats.mirrored_and_dropped(DropReason::QueueFull);
            return None;
        }
        let before = self.stats.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
        if before.saturating_add(bytes) > self.max_bytes {
            self.stats.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
            self.stats.mirrored_and_dropped(DropReason::QueueFull);
            return None;
        }
        // Counted queued before it is visible to the worker, so the gauges never go negative.
        Some(JobTicket::queued(&self.stats, bytes))
    }

    /// Queues a copy without waiting: full or closed means dropped and counted.
    pub(crate) fn send(&self, job: MirrorJob, ticket: JobTicket) {
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

/// The silent breaker of one model group: stops sending copies to a silent group that keeps failing,
/// and probes it until it answers again.
///
/// Deployment cooldowns never apply to the only deployment of a group (that would fail every
/// primary call with nothing to fail over to), so they cannot protect the gateway from a broken
/// one-deployment shadow. This breaker is separate: only silent calls feed it and only
/// `fire_mirrors` reads it, so primary calls to the same group are never refused by it.
///
/// - Closed (`open_until_ms == 0`): every copy is sent. `threshold` consecutive failed silent calls
///   (after their retries and fallbacks; a success resets the count) open it for `open_ms`.
/// - Open (`now < open_until_ms`): copies are dropped as [`DropReason::Unhealthy`] before they are
///   made.
/// - Half-open (`now >= open_until_ms`): the first copy to move `open_until_ms` forward by `open_ms`
///   is the probe, and the others keep being dropped. The probe's success closes the breaker; its
///   failure reopens it. A probe that never reports (dropped from a full queue, cut at shutdown)
///   only delays the next probe by `open_ms`, so the breaker cannot stick half-open.
///
/// Every step is a load or one read-modify-write on an atomic: no lock, no allocation.
#[derive(Debug, Default)]
pub(crate) struct SilentBreaker {
    failures: AtomicU32,
    open_until_ms: AtomicU64,
    /// When a failed silent call of this group was last logged, and how many failed since.
    last_warn_ms: AtomicU64,
    unlogged: AtomicU64,
}

/// How often, at most, a failed silent call of one group is logged; the others are counted in the
/// next line (and always in the metrics).
pub(crate) const SILENT_WARN_INTERVAL_MS: u64 = 10_000;

impl SilentBreaker {
    /// Whether a copy may be sent now (closed, or this copy is the half-open probe).
    pub(crate) fn admits(&self, now_ms: u64, open_ms: u64) -> bool {
        let until = self.open_until_ms.load(Ordering::Relaxed);
        if until == 0 {
            return true;
        }
        if now_ms < until {
            return false;
        }
        self.open_until_ms
            .compare_exchange(
                until,
                now_ms + open_ms.max(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// A silent call of this group succeeded; returns whether that closed an open breaker.
    pub(crate) fn record_success(&self) -> bool {
        // Loads first: a healthy group's calls only read these cache lines.
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        self.open_until_ms.load(Ordering::Relaxed) != 0
            && self.open_until_ms.swap(0, Ordering::Relaxed) != 0
    }

    /// A silent call of this group failed in a way that says the group is unhealthy; returns the
    /// consecutive failures when this failure opened a closed breaker.
    pub(crate) fn record_failure(&self, now_ms: u64, threshold: u32, open_ms: u64) -> Option<u32> {
        let failures = self
            .failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        let reopen = now_ms + open_ms.max(1);
        let until = self.open_until_ms.load(Ordering::Relaxed);
        if until != 0 {
            // Open or half-open: a failed probe (or a call that was running when it opened) keeps it
            // open.
            self.open_until_ms.fetch_max(reopen, Ordering::Relaxed);
            return None;
        }
        if failures < threshold.max(1) {
            return None;
        }
        self.open_until_ms
            .compare_exchange(0, reopen, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
            .then_some(failures)
    }

    /// Whether it is open or half-open.
    pub(crate) fn is_open(&self) -> bool {
        self.open_until_ms.load(Ordering::Relaxed) != 0
    }

    /// Whether this failure should be logged now; returns the failures not logged since the last
    /// line, or `None` to count it silently.
    pub(crate) fn should_log_failure(&self, now_ms: u64) -> Option<u64> {
        let last = self.last_warn_ms.load(Ordering::Relaxed);
        // The first failure is always logged (`last == 0` before any).
        if last != 0 && now_ms.saturating_sub(last) < SILENT_WARN_INTERVAL_MS {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        // `max(1)` keeps "never logged" distinct from a log at clock zero.
        if self
            .last_warn_ms
            .compare_exchange(last, now_ms.max(1), Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.unlogged.swap(0, Ordering::Relaxed))
    }

    /// Failures not logged yet (reported when the group recovers).
    pub(crate) fn take_unlogged(&self) -> u64 {
        self.unlogged.swap(0, Ordering::Relaxed)
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

/// Roughly the heap bytes a silent copy of `request` holds: every string in it (message texts, content
/// parts such as base64 images, tool calls and definitions, metadata) plus a fixed allowance per
/// message, part and JSON node for the structs, map entries and allocator slack.
///
/// One pass over the request, no serialization and no allocation; computed once per client request
/// and used for every target. It is an estimate for a memory bound, not an exact size: it errs on
/// the high side for small messages.
pub(crate) fn approx_copy_bytes(request: &ChatRequest) -> u64 {
    /// The request struct, its small fields and the metadata the copy gains.
    const PER_REQUEST: usize = 512;
    /// A message struct, its role and its allocations' slack.
    const PER_MESSAGE: usize = 160;
    /// A content part or tool call struct.
    const PER_PART: usize = 96;
    let mut bytes =
        PER_REQUEST + request.model.len() + request.user.as_ref().map_or(0, String::len);
    for message in &request.messages {
        bytes += PER_MESSAGE + message.role.len();
        match &message.content {
            Some(MessageContent::Text(text)) => bytes += text.len(),
            Some(MessageContent::Parts(parts)) => {
                for part in parts {
                    bytes += PER_PART
                        + part.kind.len()
                        + part.text.as_ref().map_or(0, String::len)
                        + map_bytes(&part.extra);
                }
            }
            None => {}
        }
        bytes += message.name.as_ref().map_or(0, String::len);
        bytes += message.tool_call_id.as_ref().map_or(0, String::len);
        for call in message.tool_calls.iter().flatten() {
            bytes += PER_PART
                + call.id.len()
                + call.kind.len()
                + call.function.name.len()
                + call.function.arguments.len()
                + map_bytes(&call.extra);
        }
        bytes += map_bytes(&message.extra);
    }
    for tool in request.tools.iter().flatten() {
        bytes += PER_PART + tool.kind.len() + tool.function.as_ref().map_or(0, value_bytes);
        bytes += map_bytes(&tool.extra);
    }
    for value in [
        &request.stop,
        &request.tool_choice,
        &request.response_format,
    ]
    .into_iter()
    .flatten()
    {
        bytes += value_bytes(value);
    }
    bytes += request.metadata.as_ref().map_or(0, map_bytes);
    bytes += map_bytes(&request.extra);
    u64::try_from(bytes).unwrap_or(u64::MAX)
}

/// A JSON node's allowance beyond its strings.
const PER_JSON_NODE: usize = 32;

fn map_bytes(map: &serde_json::Map<String, serde_json::Value>) -> usize {
    map.iter()
        .map(|(key, value)| key.len() + value_bytes(value))
        .sum()
}

fn value_bytes(value: &serde_json::Value) -> usize {
    use serde_json::Value;
    PER_JSON_NODE
        + match value {
            Value::Null | Value::Bool(_) | Value::Number(_) => 0,
            Value::String(text) => text.len(),
            Value::Array(items) => items.iter().map(value_bytes).sum(),
            Value::Object(map) => map_bytes(map),
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
    fn breaker_opens_after_consecutive_failures_probes_once_and_closes_on_success() {
        let breaker = SilentBreaker::default();
        let (threshold, open_ms) = (3, 5_000);
        assert!(breaker.admits(0, open_ms));
        assert_eq!(breaker.record_failure(10, threshold, open_ms), None);
        // A success in between resets the count.
        assert!(!breaker.record_success());
        assert_eq!(breaker.record_failure(20, threshold, open_ms), None);
        assert_eq!(breaker.record_failure(30, threshold, open_ms), None);
        assert_eq!(breaker.record_failure(40, threshold, open_ms), Some(3));
        assert!(!breaker.admits(41, open_ms));
        assert!(!breaker.admits(5_039, open_ms));
        // Half-open: exactly one probe per window.
        assert!(breaker.admits(5_040, open_ms));
        assert!(!breaker.admits(5_041, open_ms));
        // The probe failed: open again for a full window.
        assert_eq!(breaker.record_failure(6_000, threshold, open_ms), None);
        assert!(!breaker.admits(10_999, open_ms));
        // A lost probe only delays the next one.
        assert!(breaker.admits(11_000, open_ms));
        assert!(breaker.admits(16_000, open_ms));
        assert!(breaker.record_success());
        assert!(!breaker.is_open());
        assert!(breaker.admits(16_001, open_ms) && breaker.admits(16_002, open_ms));
    }

    #[test]
    fn failure_logs_are_one_per_interval_with_the_count_in_between() {
        let breaker = SilentBreaker::default();
        assert_eq!(breaker.should_log_failure(0), Some(0));
        assert_eq!(breaker.should_log_failure(1), None);
        assert_eq!(
            breaker.should_log_failure(SILENT_WARN_INTERVAL_MS - 1),
            None
        );
        assert_eq!(
            breaker.should_log_failure(SILENT_WARN_INTERVAL_MS + 1),
            Some(2)
        );
        assert_eq!(
            breaker.should_log_failure(SILENT_WARN_INTERVAL_MS + 2),
            None
        );
        assert_eq!(breaker.take_unlogged(), 1);
    }

    #[test]
    fn copy_size_grows_with_message_content() {
        let small = ChatRequest::new("m", vec![mirror_core::ChatMessage::user("hi")]);
        let large = ChatRequest::new(
            "m",
            vec![mirror_core::ChatMessage::user("x".repeat(100_000))],
        );
        let small_bytes = approx_copy_bytes(&small);
        assert!((512..2_048).contains(&small_bytes), "{small_bytes}");
        assert!(approx_copy_bytes(&large) >= 100_000 + small_bytes - 2);
    }

    #[test]
    fn random_sampling_holds_rate() {
        let hits = (0..20_000).filter(|_| sampled_in(0.5, None)).count();
        assert!(hits.abs_diff(10_000) < 500, "{hits}");
        assert!(!sampled_in(0.0, None));
        assert!(sampled_in(1.0, Some("anything")));
    }
}
