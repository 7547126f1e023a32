//! The loop's counters, kept on the session row (`loop_state`) so that a runner started
//! after a restart continues exactly where the last recorded step left off.

use agentd_domain::time::Millis;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LoopState {
    /// When the current turn started, shifted forward by time spent paused, so that
    /// `now - turn_started_at` is the turn's working time.
    pub turn_started_at: Option<Millis>,
    /// When the session was paused, while it is.
    pub paused_at: Option<Millis>,
    /// Replies in a row with no usable tool call.
    pub no_tool_streak: u32,
    /// Answers in this turn that failed `answer_format`.
    pub answer_failures: u32,
    /// Ids of the custom tool calls of the current wait already answered, so a result
    /// posted twice (the SDK retries) is accepted once.
    pub answered_calls: Vec<String>,
    /// The time budget ran out and the forced answer is under way since this instant.
    pub time_forced_at: Option<Millis>,
    /// Where the browser was at the end of the last recorded step: its observation's
    /// address, then the address after its actions (the step's events hold only the
    /// observation from before them). A browser lost to a crash or a restart reopens here.
    pub page_url: Option<String>,
}

impl LoopState {
    pub fn from_json(value: &Value) -> Self {
        serde_json::from_value(value.clone()).unwrap_or_default()
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// A new turn starts now: counters reset; the browser stays where it was.
    pub fn new_turn(now: Millis, previous: &Value) -> Self {
        Self {
            turn_started_at: Some(now),
            page_url: Self::from_json(previous).page_url,
            ..Self::default()
        }
    }
}
