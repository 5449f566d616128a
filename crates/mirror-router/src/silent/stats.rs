//! The silent-copy counters: every copy a primary call was eligible for ends in exactly one of them.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Why a silent copy was not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// No room for it: the memory budget of queued and running copies (`silent_max_bytes`) could
    /// not take this one, or the queue held `silent_queue_size` copies.
    QueueFull,
    /// Sampling left it out.
    SampledOut,
    /// The caller opted this request out.
    OptedOut,
    /// Mirroring is switched off router-wide.
    SwitchedOff,
    /// Copies to this silent group are switched off (`POST /admin/mirror/targets/{group}`,
    /// [`crate::Router::set_target`]).
    Disabled,
    /// The silent group spent its `max_spend_usd` (this UTC day, or in total).
    BudgetExhausted,
    /// The silent group's experiment is over (`until`, or `duration` since the process start).
    ExperimentEnded,
    /// The silent group had its `max_mirrors_per_minute` this minute (across instances that share
    /// state).
    RateCapped,
    /// The silent group was failing: every one of its deployments was cooling down, or its silent
    /// breaker was open (see [`crate::Router::mirror_stats`] and `docs/mirroring.md`).
    Unhealthy,
    /// The router shut down before it ran or finished.
    Shutdown,
    /// A Responses request continues state the silent group does not have: a
    /// `previous_response_id` with no silent response mapped to it (evicted, or the earlier silent
    /// call failed, was dropped or has not finished), or a `conversation`.
    MissingState,
    /// A Responses request with `mcp` tools, which the upstream calls itself and which may write:
    /// a shadow must not act on the world twice.
    McpTools,
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
    /// Bytes charged to queued and running copies against the budget: reserved before a copy is
    /// made, given back when it ends.
    pub(super) bytes: AtomicU64,
    /// Silent groups whose breaker is open (or half-open).
    breakers_open: AtomicU64,
}

/// One atomic per field of [`MirrorSnapshot`].
#[derive(Debug, Default)]
pub(super) struct Counts {
    pub(super) mirrored: AtomicU64,
    pub(super) completed: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) dropped_queue_full: AtomicU64,
    pub(super) dropped_sampled_out: AtomicU64,
    pub(super) dropped_opted_out: AtomicU64,
    pub(super) dropped_switched_off: AtomicU64,
    pub(super) dropped_disabled: AtomicU64,
    pub(super) dropped_budget_exhausted: AtomicU64,
    pub(super) dropped_experiment_ended: AtomicU64,
    pub(super) dropped_rate_capped: AtomicU64,
    pub(super) dropped_unhealthy: AtomicU64,
    pub(super) dropped_shutdown: AtomicU64,
    pub(super) dropped_missing_state: AtomicU64,
    pub(super) dropped_mcp_tools: AtomicU64,
    pub(super) queued: AtomicU64,
    pub(super) running: AtomicU64,
}

impl Counts {
    pub(super) fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::SeqCst);
    }

    pub(super) fn sub(counter: &AtomicU64) {
        counter.fetch_sub(1, Ordering::SeqCst);
    }

    pub(super) fn count_drop(&self, reason: DropReason) {
        Counts::add(match reason {
            DropReason::QueueFull => &self.dropped_queue_full,
            DropReason::SampledOut => &self.dropped_sampled_out,
            DropReason::OptedOut => &self.dropped_opted_out,
            DropReason::SwitchedOff => &self.dropped_switched_off,
            DropReason::Disabled => &self.dropped_disabled,
            DropReason::BudgetExhausted => &self.dropped_budget_exhausted,
            DropReason::ExperimentEnded => &self.dropped_experiment_ended,
            DropReason::RateCapped => &self.dropped_rate_capped,
            DropReason::Unhealthy => &self.dropped_unhealthy,
            DropReason::Shutdown => &self.dropped_shutdown,
            DropReason::MissingState => &self.dropped_missing_state,
            DropReason::McpTools => &self.dropped_mcp_tools,
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
            dropped_disabled: load(&self.dropped_disabled),
            dropped_budget_exhausted: load(&self.dropped_budget_exhausted),
            dropped_experiment_ended: load(&self.dropped_experiment_ended),
            dropped_rate_capped: load(&self.dropped_rate_capped),
            dropped_unhealthy: load(&self.dropped_unhealthy),
            dropped_shutdown: load(&self.dropped_shutdown),
            dropped_missing_state: load(&self.dropped_missing_state),
            dropped_mcp_tools: load(&self.dropped_mcp_tools),
            queued: load(&self.queued),
            running: load(&self.running),
            silent_bytes: 0,
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
    /// Dropped because copies to their silent group were switched off.
    pub dropped_disabled: u64,
    /// Dropped because their silent group spent its `max_spend_usd`.
    pub dropped_budget_exhausted: u64,
    /// Dropped because their silent group's `until` or `duration` had passed.
    pub dropped_experiment_ended: u64,
    /// Dropped because the silent group reached `max_mirrors_per_minute`.
    pub dropped_rate_capped: u64,
    /// Dropped because the silent group was failing (all deployments cooling down, or its silent
    /// breaker open).
    pub dropped_unhealthy: u64,
    /// Dropped at shutdown.
    pub dropped_shutdown: u64,
    /// Dropped because a Responses request continues state the silent group does not have.
    pub dropped_missing_state: u64,
    /// Dropped because a Responses request carries `mcp` tools.
    pub dropped_mcp_tools: u64,
    /// Waiting in the queue.
    pub queued: u64,
    /// Running now.
    pub running: u64,
    /// Bytes charged against the memory budget by queued and running copies: estimated request
    /// bytes, a fixed allowance per call, and a running stream's answer so far (a gauge; not part
    /// of the balance; 0 once every copy has ended).
    pub silent_bytes: u64,
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
            + self.dropped_disabled
            + self.dropped_budget_exhausted
            + self.dropped_experiment_ended
            + self.dropped_rate_capped
            + self.dropped_unhealthy
            + self.dropped_shutdown
            + self.dropped_missing_state
            + self.dropped_mcp_tools
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
                    snapshot.silent_bytes = self.bytes.load(Ordering::Relaxed);
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
    pub(super) fn update(&self, apply: impl FnOnce(&Counts)) {
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
