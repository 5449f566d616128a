//! The few time formats the sinks need, from LiteLLM's epoch-second floats.

use time::{Date, OffsetDateTime};

/// The UTC time of `epoch_seconds`; out-of-range or non-finite values give the epoch.
pub(crate) fn utc(epoch_seconds: f64) -> OffsetDateTime {
    let nanos = epoch_nanos(epoch_seconds);
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Nanoseconds since the epoch, as OTLP wants them; negative or non-finite values give 0.
pub(crate) fn epoch_nanos(epoch_seconds: f64) -> u64 {
    if !epoch_seconds.is_finite() || epoch_seconds <= 0.0 {
        return 0;
    }
    // Whole microseconds first: an f64 of today's epoch seconds holds about 0.2 µs of precision, and
    // LiteLLM's times are microsecond times.
    let micros = (epoch_seconds * 1e6).round();
    if micros >= u64::MAX as f64 / 1000.0 {
        return 0;
    }
    (micros as u64) * 1000
}

/// `YYYY-MM-DD`.
pub(crate) fn date(day: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        day.year(),
        u8::from(day.month()),
        day.day()
    )
}

/// `HH-MM-SS-ffffff`, LiteLLM's `%H-%M-%S-%f`.
pub(crate) fn time_of_day(at: OffsetDateTime) -> String {
    format!(
        "{:02}-{:02}-{:02}-{:06}",
        at.hour(),
        at.minute(),
        at.second(),
        at.microsecond()
    )
}

/// ISO 8601 in UTC with microseconds: `2025-01-16T11:28:54.796360Z`.
pub(crate) fn iso8601(at: OffsetDateTime) -> String {
    format!(
        "{}T{:02}:{:02}:{:02}.{:06}Z",
        date(at.date()),
        at.hour(),
        at.minute(),
        at.second(),
        at.microsecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        // 2025-01-16T11:28:54.796360Z
        let at = utc(1_737_026_934.796_36);
        assert_eq!(date(at.date()), "2025-01-16");
        assert_eq!(time_of_day(at), "11-28-54-796360");
        assert_eq!(iso8601(at), "2025-01-16T11:28:54.796360Z");
        assert_eq!(epoch_nanos(1_737_026_934.796_36), 1_737_026_934_796_360_000);
        assert_eq!(epoch_nanos(f64::NAN), 0);
        assert_eq!(iso8601(utc(-5.0)), "1970-01-01T00:00:00.000000Z");
    }
}
