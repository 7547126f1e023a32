//! How long to wait before the next attempt. Which failures are retried is decided by
//! [`crate::ModelError::is_retryable`]; this module only computes delays.

use std::time::Duration;

/// Longest backoff computed from `retry_base`, whatever the number of retries.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Longest `Retry-After` honoured: a server asking for more is not worth a stalled session.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Delay before retry number `retry` (1 for the first retry): `base · 2^(retry-1)` within
/// ±25 % jitter, capped, and never shorter than the server's `Retry-After` (capped).
pub(crate) fn backoff_delay(base: Duration, retry: u32, retry_after: Option<Duration>) -> Duration {
    let doubling = 2u32.saturating_pow(retry.saturating_sub(1));
    let nominal = base.saturating_mul(doubling).min(MAX_BACKOFF);
    let jittered = nominal.mul_f64(0.75 + 0.5 * random_unit());
    match retry_after {
        Some(asked) => jittered.max(asked.min(MAX_RETRY_AFTER)),
        None => jittered,
    }
}

/// Parses a `Retry-After` value given in seconds (integer or decimal). The HTTP-date form
/// is not used by model servers and yields `None` (plain backoff applies).
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let seconds: f64 = value.trim().parse().ok()?;
    if seconds.is_finite() && seconds >= 0.0 {
        Some(Duration::from_secs_f64(
            seconds.min(MAX_RETRY_AFTER.as_secs_f64()),
        ))
    } else {
        None
    }
}

/// A number in [0, 1) good enough for jitter; `RandomState` is randomly keyed per process
/// and per instance, which spares a random-number dependency.
fn random_unit() -> f64 {
    use std::hash::BuildHasher;
    let bits = std::collections::hash_map::RandomState::new().hash_one(std::time::Instant::now());
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_bounded_jitter() {
        let base = Duration::from_millis(100);
        for retry in 1..=4u32 {
            let nominal = 100.0 * f64::from(2u32.pow(retry - 1));
            for _ in 0..50 {
                let delay = backoff_delay(base, retry, None).as_secs_f64() * 1000.0;
                assert!(
                    delay >= nominal * 0.75 - 0.001 && delay <= nominal * 1.25 + 0.001,
                    "retry {retry}: {delay}ms"
                );
            }
        }
        assert!(backoff_delay(Duration::from_secs(10), 30, None) <= MAX_BACKOFF.mul_f64(1.25));
    }

    #[test]
    fn retry_after_wins_when_longer_and_is_capped() {
        let base = Duration::from_millis(1);
        assert_eq!(
            backoff_delay(base, 1, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            backoff_delay(base, 1, Some(Duration::from_secs(3600))),
            MAX_RETRY_AFTER
        );
        assert!(
            backoff_delay(Duration::from_secs(4), 1, Some(Duration::from_secs(1)))
                >= Duration::from_secs(3)
        );
    }

    #[test]
    fn retry_after_values_are_parsed_leniently() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0.5 "), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("100000"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }
}
