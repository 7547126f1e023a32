//! Wall-clock time as milliseconds since the Unix epoch: the one unit the store keeps,
//! portable across SQLite and PostgreSQL and cheap to compare.

use std::time::{SystemTime, UNIX_EPOCH};

pub type Millis = i64;

pub fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
