//! Run-time controls and limits per silent target (a silent model group): an on/off switch, a
//! sample-rate override, a spend budget (`max_spend_usd` per UTC day or in total) and an end
//! (`until` a date, or `duration` from the process start).
//!
//! A target is a silent group: every primary group that mirrors to it shares its switch, rate,
//! budget and end. The request path reads atomics only. The switch and the rate override are
//! operator decisions ([`TargetRuntime`]) and survive a config reload; the budget and the end come
//! from the file ([`TargetLimits`]) and are read again on reload, while the spend so far carries
//! over. Spend is known only when a silent call ends, so copies already in flight when a budget is
//! reached still run: the overshoot is at most what the copies in flight to that group cost.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::SilentTargetSettings;

/// No override of the sample rate (the f64 bits of a NaN nothing else stores).
const NO_RATE: u64 = u64::MAX;
const UNSET: u8 = 0;
const ON: u8 = 1;
const OFF: u8 = 2;
/// `spend_period` of a total budget: one period that never ends.
const TOTAL_PERIOD: u64 = 0;

/// The operator's decisions about one silent target and what it has spent: shared by every router
/// a reload builds, so nothing here resets when the file is read again.
#[derive(Debug)]
pub(crate) struct TargetRuntime {
    /// UNSET (on), ON or OFF.
    switch: AtomicU8,
    rate: AtomicU64,
    /// The spend period the counters below belong to: a UTC day number, or `TOTAL_PERIOD`.
    period: AtomicU64,
    /// This instance's spend in the period, in micro-USD.
    local_micros: AtomicU64,
    /// Other instances' spend in the period (from the shared-state sync), in micro-USD.
    remote_micros: AtomicU64,
    /// Whether a switch or rate was set at run time on this instance and not yet published.
    pub(crate) dirty: AtomicBool,
}

impl Default for TargetRuntime {
    fn default() -> Self {
        TargetRuntime {
            switch: AtomicU8::new(UNSET),
            rate: AtomicU64::new(NO_RATE),
            period: AtomicU64::new(TOTAL_PERIOD),
            local_micros: AtomicU64::new(0),
            remote_micros: AtomicU64::new(0),
            dirty: AtomicBool::new(false),
        }
    }
}

impl TargetRuntime {
    /// Whether copies to this target are switched on (the default).
    pub(crate) fn is_enabled(&self) -> bool {
        self.switch.load(Ordering::Acquire) != OFF
    }

    pub(crate) fn set_enabled(&self, enabled: bool) {
        self.switch
            .store(if enabled { ON } else { OFF }, Ordering::Release);
    }

    /// The sample-rate override, if one was set at run time.
    pub(crate) fn rate(&self) -> Option<f64> {
        let bits = self.rate.load(Ordering::Acquire);
        (bits != NO_RATE).then(|| f64::from_bits(bits))
    }

    pub(crate) fn set_rate(&self, rate: f64) {
        self.rate.store(rate.to_bits(), Ordering::Release);
    }

    /// The switch as set at run time (None: never set).
    pub(crate) fn switch(&self) -> Option<bool> {
        match self.switch.load(Ordering::Acquire) {
            ON => Some(true),
            OFF => Some(false),
            _ => None,
        }
    }

    /// Moves the counters to `period`, starting it at zero, when they belong to another one.
    fn roll(&self, period: u64) {
        let current = self.period.load(Ordering::Acquire);
        if current != period
            && self
                .period
                .compare_exchange(current, period, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.local_micros.store(0, Ordering::Release);
            self.remote_micros.store(0, Ordering::Release);
        }
    }

    /// Adds a finished silent call's cost.
    pub(crate) fn add_spend(&self, period: u64, micros: u64) {
        self.roll(period);
        self.local_micros.fetch_add(micros, Ordering::AcqRel);
    }

    /// This instance's spend in `period`, in micro-USD.
    pub(crate) fn local_spend(&self, period: u64) -> u64 {
        self.roll(period);
        self.local_micros.load(Ordering::Acquire)
    }

    /// Sets what the other instances spent in `period` (from a sync).
    pub(crate) fn set_remote_spend(&self, period: u64, micros: u64) {
        self.roll(period);
        self.remote_micros.store(micros, Ordering::Release);
    }

    /// Spend in `period` over every instance, in micro-USD.
    pub(crate) fn spend(&self, period: u64) -> u64 {
        self.roll(period);
        self.local_micros
            .load(Ordering::Acquire)
            .saturating_add(self.remote_micros.load(Ordering::Acquire))
    }
}

/// A silent target's limits from the file, resolved when the router is built.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TargetLimits {
    /// `max_spend_usd` in micro-USD.
    pub(crate) max_micros: Option<u64>,
    /// Whether the budget is per UTC day (`budget_duration: 1d`) rather than in total.
    pub(crate) daily: bool,
    /// When copies stop, in milliseconds since the Unix epoch.
    pub(crate) ends_at_ms: Option<u64>,
}

/// Why a target takes no copies now, beyond the switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    Ended,
    BudgetExhausted,
}

impl TargetLimits {
    /// Resolves a target's settings (checked by `validate`): the end of a `duration` counts from
    /// the process start, so a reload does not move it.
    pub(crate) fn from_settings(settings: &SilentTargetSettings) -> Self {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let max_micros = settings
            .max_spend_usd
            .map(|usd| (usd * 1e6).round().max(0.0) as u64);
        let ends_at_ms = match (&settings.until, &settings.duration) {
            (Some(until), _) => parse_rfc3339_ms(until).ok(),
            (None, Some(duration)) => parse_duration(duration)
                .ok()
                .map(|d| process_start_ms().saturating_add(millis(d))),
            (None, None) => None,
        };
        TargetLimits {
            max_micros,
            daily: settings.budget_duration.is_some(),
            ends_at_ms,
        }
    }

    /// The spend period now: the UTC day for a daily budget, else the one total period.
    pub(crate) fn period(&self, now_ms: u64) -> u64 {
        if self.daily {
            // Day 0 is 1970-01-01; shifted by one so no day is `TOTAL_PERIOD`.
            now_ms / 86_400_000 + 1
        } else {
            TOTAL_PERIOD
        }
    }

    /// Whether the target is past its end or its budget.
    pub(crate) fn stop(&self, runtime: &TargetRuntime, now_ms: u64) -> Option<Stop> {
        if self.ends_at_ms.is_some_and(|end| now_ms >= end) {
            return Some(Stop::Ended);
        }
        let max = self.max_micros?;
        (runtime.spend(self.period(now_ms)) >= max).then_some(Stop::BudgetExhausted)
    }

    /// Whether anything here needs the time to decide.
    pub(crate) fn is_limited(&self) -> bool {
        self.max_micros.is_some() || self.ends_at_ms.is_some()
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Wall-clock milliseconds since the Unix epoch (budgets' days and end dates are wall-clock).
pub(crate) fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}

/// When this process first built a router: what `duration` counts from.
fn process_start_ms() -> u64 {
    static START: OnceLock<u64> = OnceLock::new();
    *START.get_or_init(wall_ms)
}

/// Parses `30m`, `12h`, `7d`, `90s` (a positive whole number and one unit).
///
/// # Errors
///
/// A message saying what is expected.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let expected = || {
        format!(
            "`{text}` is not a duration; expected a whole number and a unit: `90s`, `30m`, `12h`, `7d`"
        )
    };
    let unit_at = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(expected)?;
    let (number, unit) = text.split_at(unit_at);
    let number: u64 = number.parse().map_err(|_| expected())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(expected()),
    };
    if number == 0 {
        return Err(format!("`{text}` is zero; give a duration greater than 0"));
    }
    number
        .checked_mul(seconds)
        .filter(|s| *s <= 100 * 365 * 86_400)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is longer than 100 years"))
}

/// Parses an RFC 3339 date-time (`2026-12-31T23:59:59Z`, `2026-12-31T18:00:00+02:00`, fractions
/// allowed) or a bare date (`2026-12-31`, midnight UTC starting that day), to Unix milliseconds.
///
/// # Errors
///
/// A message saying what is expected.
pub(crate) fn parse_rfc3339_ms(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let expected = || {
        format!(
            "`{text}` is not an RFC 3339 date-time; expected e.g. `2026-12-31T23:59:59Z`, `2026-12-31T18:00:00+02:00` or `2026-12-31`"
        )
    };
    let bytes = text.as_bytes();
    let number = |from: usize, len: usize| -> Result<i64, String> {
        let part = text.get(from..from + len).ok_or_else(expected)?;
        if !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(expected());
        }
        part.parse().map_err(|_| expected())
    };
    if bytes.len() < 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return Err(expected());
    }
    let (year, month, day) = (number(0, 4)?, number(5, 2)?, number(8, 2)?);
    if !(1..=12).contains(&month) || !(1..=days_in_month(year, month)).contains(&day) {
        return Err(expected());
    }
    let mut seconds = days_from_civil(year, month, day) * 86_400;
    let mut millis_part = 0;
    if bytes.len() > 10 {
        if !matches!(bytes[10], b'T' | b't' | b' ') || bytes.len() < 20 {
            return Err(expected());
        }
        if bytes[13] != b':' || bytes[16] != b':' {
            return Err(expected());
        }
        let (hour, minute, second) = (number(11, 2)?, number(14, 2)?, number(17, 2)?);
        if hour > 23 || minute > 59 || second > 60 {
            return Err(expected());
        }
        seconds += hour * 3_600 + minute * 60 + second.min(59);
        let mut rest = &text[19..];
        if let Some(fraction) = rest.strip_prefix('.') {
            let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(expected());
            }
            let first3: String = fraction[..digits]
                .chars()
                .chain("00".chars())
                .take(3)
                .collect();
            millis_part = first3.parse::<i64>().map_err(|_| expected())?;
            rest = &fraction[digits..];
        }
        let offset = match rest {
            "Z" | "z" => 0,
            _ if rest.len() == 6 && matches!(rest.as_bytes()[0], b'+' | b'-') => {
                let base = text.len() - 6;
                if rest.as_bytes()[3] != b':' {
                    return Err(expected());
                }
                let (h, m) = (number(base + 1, 2)?, number(base + 4, 2)?);
                if h > 23 || m > 59 {
                    return Err(expected());
                }
                let sign = if rest.starts_with('-') { -1 } else { 1 };
                sign * (h * 3_600 + m * 60)
            }
            _ => return Err(expected()),
        };
        seconds -= offset;
    }
    let ms = seconds * 1000 + millis_part;
    u64::try_from(ms).map_err(|_| format!("`{text}` is before 1970"))
}

/// Formats Unix milliseconds as RFC 3339 in UTC, to the second (`2026-12-31T23:59:59Z`).
pub(crate) fn format_rfc3339(ms: u64) -> String {
    let seconds = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_to_unix_milliseconds() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_rfc3339_ms("2026-11-30"), Ok(1_795_996_800_000));
        assert_eq!(
            parse_rfc3339_ms("2026-11-30T02:00:00.250+02:00"),
            Ok(1_795_996_800_250)
        );
        assert_eq!(
            parse_rfc3339_ms("2000-02-29T12:00:00Z"),
            Ok(951_825_600_000)
        );
        for text in [
            "2000-02-29T12:00:00Z",
            "2026-11-30T00:00:00Z",
            "1999-12-31T23:59:59Z",
        ] {
            assert_eq!(
                parse_rfc3339_ms(text).map(format_rfc3339).as_deref(),
                Ok(text)
            );
        }
        for bad in [
            "2026-13-01",
            "2026-02-30",
            "next week",
            "2026-11-30T25:00:00Z",
            "2026-11-30T10:00:00",
            "1969-12-31",
        ] {
            assert!(parse_rfc3339_ms(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_parse_with_one_unit() {
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        for bad in ["0d", "7", "d", "1w", "-1d", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn spend_rolls_over_with_the_period() {
        let runtime = TargetRuntime::default();
        runtime.add_spend(5, 300);
        runtime.set_remote_spend(5, 200);
        assert_eq!(runtime.spend(5), 500);
        let limits = TargetLimits {
            max_micros: Some(500),
            daily: true,
            ends_at_ms: None,
        };
        let day5 = 4 * 86_400_000 + 10;
        assert_eq!(limits.stop(&runtime, day5), Some(Stop::BudgetExhausted));
        // The next day starts at zero.
        assert_eq!(limits.stop(&runtime, day5 + 86_400_000), None);
        assert_eq!(runtime.spend(6), 0);
        let ended = TargetLimits {
            ends_at_ms: Some(1_000),
            ..TargetLimits::default()
        };
        assert_eq!(ended.stop(&runtime, 1_000), Some(Stop::Ended));
        assert_eq!(ended.stop(&runtime, 999), None);
    }
}
