//! The silent breaker: stops making copies for a silent group that keeps failing.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// The silent breaker of one model group: stops sending copies to a silent group that keeps failing,
/// and probes it until it answers again.
///
/// Deployment cooldowns never apply to the only deployment of a group (that would fail every
/// primary call with nothing to fail over to), so they cannot protect the gateway from a broken
/// one-deployment shadow. This breaker is separate: only silent calls feed it and only
/// the silent eligibility chain reads it, so primary calls to the same group are never refused by it.
///
/// - Closed (`open_until_ms == 0`): every copy is sent. `threshold` consecutive failed silent calls
///   (after their retries and fallbacks; a success resets the count) open it for `open_ms`.
/// - Open (`now < open_until_ms`): copies are dropped as [`DropReason::Unhealthy`](super::DropReason::Unhealthy) before they are
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
