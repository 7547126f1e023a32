//! Times on the wire. The store keeps milliseconds since the epoch; responses carry RFC
//! 3339 UTC with milliseconds and `Z` (`2026-05-07T14:30:02.123Z`). Query strings may
//! carry what the SDK sends: ISO 8601 with an offset (a naive value gets the client's
//! local offset), or unix epoch numbers.

use agentd_domain::time::Millis;
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};

/// `2026-05-07T14:30:02.123Z`.
pub fn format_time(ms: Millis) -> String {
    // Beyond chrono's range (about 262,000 years either way) nothing real lies; clamp.
    let time = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or(if ms < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    });
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Milliseconds since the epoch from RFC 3339 (any offset; a space may replace the `T`;
/// a value without an offset is read as UTC) or unix epoch seconds (integer or
/// fractional). As in pydantic, an epoch number above 2e10 is read as milliseconds.
pub fn parse_time(s: &str) -> Option<Millis> {
    let s = s.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(s) {
        return Some(time.timestamp_millis());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(s, format) {
            return Some(naive.and_utc().timestamp_millis());
        }
    }
    parse_epoch(s)
}

fn parse_epoch(s: &str) -> Option<Millis> {
    let looks_numeric = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'));
    if !looks_numeric {
        return None;
    }
    let number: f64 = s.parse().ok()?;
    if !number.is_finite() {
        return None;
    }
    let ms = if number.abs() > 2e10 {
        number
    } else {
        number * 1000.0
    };
    let ms = ms.round();
    // Past chrono's range the value is meaningless; refuse it rather than saturate.
    DateTime::<Utc>::from_timestamp_millis(ms as i64).map(|_| ms as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_formatted_as_utc_with_milliseconds() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_time(1_778_164_202_123), "2026-05-07T14:30:02.123Z");
        assert_eq!(format_time(-1), "1969-12-31T23:59:59.999Z");
        // Out of range clamps instead of failing.
        assert!(format_time(i64::MAX).ends_with('Z'));
    }

    #[test]
    fn rfc3339_with_any_offset_parses() {
        let ms = 1_778_164_202_123;
        for text in [
            "2026-05-07T14:30:02.123Z",
            "2026-05-07T14:30:02.123+00:00",
            "2026-05-07T16:30:02.123+02:00",
            "2026-05-07 14:30:02.123Z",
            "2026-05-07t14:30:02.123z",
            "2026-05-07T14:30:02.123",
        ] {
            assert_eq!(parse_time(text), Some(ms), "{text}");
        }
        assert_eq!(parse_time("2025-01-02T03:04:05Z"), Some(1_735_787_045_000));
        assert_eq!(parse_time("2025-01-02T03:04:05"), Some(1_735_787_045_000));
        assert_eq!(parse_time(" 2025-01-02 03:04:05 "), Some(1_735_787_045_000));
    }

    #[test]
    fn epoch_numbers_parse_as_seconds_or_milliseconds() {
        assert_eq!(parse_time("1735787045"), Some(1_735_787_045_000));
        assert_eq!(parse_time("1735787045.5"), Some(1_735_787_045_500));
        assert_eq!(parse_time("1735787045123"), Some(1_735_787_045_123));
        assert_eq!(parse_time("-1"), Some(-1000));
    }

    #[test]
    fn garbage_does_not_parse() {
        for text in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "1e400",
            "NaN",
            "inf",
            "12:00",
        ] {
            assert_eq!(parse_time(text), None, "{text}");
        }
    }

    #[test]
    fn formatting_round_trips() {
        for ms in [0, 1, 999, 1_778_164_202_123, -86_400_000] {
            assert_eq!(parse_time(&format_time(ms)), Some(ms));
        }
    }
}
