//! The ten statuses of a session and the control matrix: what each client control does
//! in each status. `docs/lifecycle.md` gives the same table in prose; the tests below
//! pin every cell.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    Queued,
    Pending,
    Running,
    Paused,
    Idle,
    AwaitingToolResults,
    Completed,
    Failed,
    TimedOut,
    Interrupted,
}

impl SessionStatus {
    pub const ALL: [SessionStatus; 10] = [
        Self::Queued,
        Self::Pending,
        Self::Running,
        Self::Paused,
        Self::Idle,
        Self::AwaitingToolResults,
        Self::Completed,
        Self::Failed,
        Self::TimedOut,
        Self::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Idle => "idle",
            Self::AwaitingToolResults => "awaiting_tool_results",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::TimedOut => "timed_out",
            Self::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Terminal statuses never change again, except by a message that restarts the session.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Failed | Self::TimedOut | Self::Interrupted
        )
    }

    /// A session holds one of its organisation's concurrency slots in every
    /// non-terminal status but `queued`.
    pub fn holds_slot(self) -> bool {
        !self.is_terminal() && self != Self::Queued
    }

    /// Statuses in which the agent loop has work to do and a runner should be driving it.
    pub fn is_runnable(self) -> bool {
        matches!(self, Self::Pending | Self::Running)
    }
}

/// Why a session failed or timed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    EnvironmentError,
    NoAnswer,
    AnswerValidation,
    Timeout,
    InsufficientCredit,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EnvironmentError => "environment_error",
            Self::NoAnswer => "no_answer",
            Self::AnswerValidation => "answer_validation",
            Self::Timeout => "timeout",
            Self::InsufficientCredit => "insufficient_credit",
            Self::Internal => "internal",
        }
    }
}

/// The agent's own verdict on its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Partial,
    Infeasible,
    Blocked,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Self::Success,
        Self::Partial,
        Self::Infeasible,
        Self::Blocked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Partial => "partial",
            Self::Infeasible => "infeasible",
            Self::Blocked => "blocked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// A client control on a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Message,
    Pause,
    Resume,
    ForceAnswer,
    Cancel,
    ToolResults,
}

impl Control {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Message => "message",
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::ForceAnswer => "force_answer",
            Self::Cancel => "cancel",
            Self::ToolResults => "tool_results",
        }
    }
}

/// What a control does to a session in a given status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlDecision {
    /// The control changes the session: the engine records it and its events.
    Apply,
    /// Accepted (2xx) and recorded nowhere: the session is already where the control
    /// would take it, or the control has no meaning there but is harmless.
    NoOp,
    /// Refused with 409: the session cannot take this control in this status.
    Conflict,
}

/// The control matrix. `Apply` says the control acts; what it does (the target status,
/// the events) is the engine's job and depends on more than the status (pending tool
/// calls, whether the session ever started). Messages to terminal sessions restart them.
pub fn decide_control(status: SessionStatus, control: Control) -> ControlDecision {
    use Control as C;
    use ControlDecision::{Apply, Conflict, NoOp};
    use SessionStatus as S;
    match (status, control) {
        // A cancel always acts on a live session; on an ended one it changes nothing.
        (s, C::Cancel) if s.is_terminal() => NoOp,
        (_, C::Cancel) => Apply,
        // Messages are buffered, delivered, wake an idle session or restart an ended one.
        (_, C::Message) => Apply,

        (S::Queued, C::Pause | C::Resume | C::ToolResults) => Conflict,
        (S::Queued, C::ForceAnswer) => NoOp,

        (S::Pending, C::Pause) => Apply,
        (S::Pending, C::Resume) => NoOp,
        (S::Pending, C::ForceAnswer) => Apply,
        (S::Pending, C::ToolResults) => Conflict,

        (S::Running, C::Pause | C::ForceAnswer) => Apply,
        (S::Running, C::Resume) => NoOp,
        (S::Running, C::ToolResults) => Conflict,

        (S::Paused, C::Pause) => NoOp,
        (S::Paused, C::Resume | C::ForceAnswer | C::ToolResults) => Apply,

        (S::Idle, C::Pause | C::Resume | C::ForceAnswer) => NoOp,
        (S::Idle, C::ToolResults) => Conflict,

        (S::AwaitingToolResults, C::Pause | C::ForceAnswer | C::ToolResults) => Apply,
        (S::AwaitingToolResults, C::Resume) => NoOp,

        (
            S::Completed | S::Failed | S::TimedOut | S::Interrupted,
            C::Pause | C::Resume | C::ForceAnswer | C::ToolResults,
        ) => Conflict,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_round_trip() {
        for s in SessionStatus::ALL {
            assert_eq!(SessionStatus::parse(s.as_str()), Some(s));
            let json = serde_json::to_value(s).unwrap();
            assert_eq!(json, serde_json::Value::String(s.as_str().into()));
        }
    }

    #[test]
    fn slots_are_held_by_live_sessions_except_queued() {
        let holding: Vec<_> = SessionStatus::ALL
            .into_iter()
            .filter(|s| s.holds_slot())
            .map(|s| s.as_str())
            .collect();
        assert_eq!(
            holding,
            [
                "pending",
                "running",
                "paused",
                "idle",
                "awaiting_tool_results"
            ]
        );
    }

    #[test]
    fn control_matrix_cells() {
        use Control as C;
        use ControlDecision::*;
        use SessionStatus as S;
        // (status, [message, pause, resume, force_answer, cancel, tool_results])
        let table = [
            (
                S::Queued,
                [Apply, Conflict, Conflict, NoOp, Apply, Conflict],
            ),
            (S::Pending, [Apply, Apply, NoOp, Apply, Apply, Conflict]),
            (S::Running, [Apply, Apply, NoOp, Apply, Apply, Conflict]),
            (S::Paused, [Apply, NoOp, Apply, Apply, Apply, Apply]),
            (S::Idle, [Apply, NoOp, NoOp, NoOp, Apply, Conflict]),
            (
                S::AwaitingToolResults,
                [Apply, Apply, NoOp, Apply, Apply, Apply],
            ),
            (
                S::Completed,
                [Apply, Conflict, Conflict, Conflict, NoOp, Conflict],
            ),
            (
                S::Failed,
                [Apply, Conflict, Conflict, Conflict, NoOp, Conflict],
            ),
            (
                S::TimedOut,
                [Apply, Conflict, Conflict, Conflict, NoOp, Conflict],
            ),
            (
                S::Interrupted,
                [Apply, Conflict, Conflict, Conflict, NoOp, Conflict],
            ),
        ];
        let controls = [
            C::Message,
            C::Pause,
            C::Resume,
            C::ForceAnswer,
            C::Cancel,
            C::ToolResults,
        ];
        for (status, row) in table {
            for (control, want) in controls.into_iter().zip(row) {
                assert_eq!(
                    decide_control(status, control),
                    want,
                    "{} / {}",
                    status.as_str(),
                    control.as_str()
                );
            }
        }
    }
}
