//! The per-minute budget of silent copies per silent group (`max_mirrors_per_minute`).

use std::sync::atomic::{AtomicU64, Ordering};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
