//! `delete_screenshot_after_min`: a session's screenshots are deleted that many minutes
//! after it finished. Nothing is scheduled in memory: a sweep looks at every session that
//! still holds screenshots and deletes those that are due, so a restart (or another node)
//! simply sweeps again.

use std::time::Duration;

use agentd_domain::time::{Millis, now_ms};
use agentd_store::{BlobStore, SessionRecord, Store};

/// The bucket observations store their screenshots in.
pub const SCREENSHOTS: &str = "screenshots";

/// How often the sweeper looks; the retention is counted in minutes.
pub const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Whether `record`'s screenshots are due for deletion at `now`.
pub fn screenshots_due(record: &SessionRecord, now: Millis) -> bool {
    let finished = record.finished_at.filter(|_| record.status.is_terminal());
    due(&record.spec, finished, now)
}

/// `spec` is the session's serialized `SessionSpec`; `finished` is when it ended, if it
/// has (an idle or paused session has not).
fn due(spec: &serde_json::Value, finished: Option<Millis>, now: Millis) -> bool {
    let minutes = spec
        .get("delete_screenshot_after_min")
        .and_then(serde_json::Value::as_u64);
    match (minutes, finished) {
        (Some(minutes), Some(finished)) => {
            let after = Millis::try_from(minutes)
                .unwrap_or(Millis::MAX)
                .saturating_mul(60_000);
            finished.saturating_add(after) <= now
        }
        _ => false,
    }
}

/// Deletes the screenshots of every session that is due; returns how many were.
pub async fn sweep(store: &dyn Store, blobs: &dyn BlobStore) -> usize {
    let sessions = match blobs.sessions_with(SCREENSHOTS).await {
        Ok(sessions) => sessions,
        Err(e) => {
            tracing::warn!(error = %e, "screenshot sweep: cannot list the sessions");
            return 0;
        }
    };
    let now = now_ms();
    let mut deleted = 0;
    for id in sessions {
        if let Ok(Some(record)) = store.get_session(id).await
            && screenshots_due(&record, now)
        {
            delete(blobs, &record).await;
            deleted += 1;
        }
    }
    deleted
}

/// Deletes `record`'s screenshots now if they are due.
pub async fn sweep_one(blobs: &dyn BlobStore, record: &SessionRecord) {
    if screenshots_due(record, now_ms()) {
        delete(blobs, record).await;
    }
}

async fn delete(blobs: &dyn BlobStore, record: &SessionRecord) {
    match blobs.delete_bucket(record.id, SCREENSHOTS).await {
        Ok(()) => {
            tracing::info!(session_id = %record.id, "screenshots deleted (delete_screenshot_after_min)")
        }
        Err(e) => tracing::warn!(session_id = %record.id, error = %e, "cannot delete screenshots"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::due;

    #[test]
    fn screenshots_are_due_minutes_after_the_finish() {
        let spec = json!({"delete_screenshot_after_min": 2});
        assert!(!due(&spec, Some(1_000), 1_000 + 119_999));
        assert!(due(&spec, Some(1_000), 1_000 + 120_000));
    }

    #[test]
    fn zero_minutes_is_at_the_finish_and_unfinished_sessions_keep_theirs() {
        let spec = json!({"delete_screenshot_after_min": 0});
        assert!(due(&spec, Some(5), 5));
        assert!(!due(&spec, None, i64::MAX));
    }

    #[test]
    fn without_the_setting_screenshots_stay() {
        assert!(!due(&json!({}), Some(0), i64::MAX));
        assert!(!due(
            &json!({"delete_screenshot_after_min": null}),
            Some(0),
            i64::MAX
        ));
        let huge = json!({"delete_screenshot_after_min": u64::MAX});
        assert!(!due(&huge, Some(0), i64::MAX - 1));
    }
}
