//! Client controls. Each one is decided from the session row by the control matrix,
//! then recorded with its events in one commit guarded on the row it was decided from;
//! if the session moved in between, the control is decided again. Nothing here waits
//! for the agent: the runner observes the recorded control.

use agentd_domain::status::decide_control;
use agentd_domain::time::now_ms;
use agentd_domain::{Control, ControlDecision, NewEvent, SessionId, SessionStatus, events};
use agentd_store::{Guard, SessionRecord, SessionUpdate, StoreError};
use serde_json::{Value, json};

use crate::loop_state::LoopState;
use crate::{Engine, EngineError, MessageIn};

/// One result posted by the client for a pending custom tool call.
#[derive(Clone, Debug)]
pub struct ToolResultIn {
    /// The call as the client echoes it: `{tool_name, args, id}`.
    pub tool_name: String,
    pub args: Value,
    pub id: Option<String>,
    pub outcome: ToolResultOutcome,
}

#[derive(Clone, Debug)]
pub enum ToolResultOutcome {
    Result(Value),
    Error { error: String, origin: String },
}

/// A control's effect on one session, ready to commit.
struct Plan {
    update: SessionUpdate,
    events: Vec<NewEvent>,
    /// Needs a free slot (a message restarting an ended session).
    needs_slot: bool,
}

const USER: &str = "user";

impl Engine {
    pub async fn send_messages(
        &self,
        id: SessionId,
        messages: Vec<MessageIn>,
    ) -> Result<(), EngineError> {
        self.apply(id, Control::Message, |rec| {
            Ok(Some(plan_message(rec, &messages)))
        })
        .await
    }

    pub async fn pause(&self, id: SessionId) -> Result<(), EngineError> {
        self.apply(id, Control::Pause, |rec| {
            let mut state = LoopState::from_json(&rec.loop_state);
            state.paused_at = Some(now_ms());
            Ok(Some(Plan {
                update: SessionUpdate {
                    status: Some(SessionStatus::Paused),
                    bump_epoch: true,
                    loop_state: Some(state.to_json()),
                    ..Default::default()
                },
                events: vec![events::flow("pause", USER), events::run_status("paused")],
                needs_slot: false,
            }))
        })
        .await
    }

    pub async fn resume(&self, id: SessionId) -> Result<(), EngineError> {
        self.apply(id, Control::Resume, |rec| {
            let mut plan = plan_resume(rec);
            plan.events.insert(0, events::flow("resume", USER));
            Ok(Some(plan))
        })
        .await
    }

    pub async fn force_answer(&self, id: SessionId) -> Result<(), EngineError> {
        self.apply(id, Control::ForceAnswer, |rec| {
            let mut events = vec![events::flow("force_answer", USER)];
            let mut update = SessionUpdate {
                force_answer: Some(true),
                ..Default::default()
            };
            match rec.status {
                // Abandon the model call in flight: the next call is the forced one.
                SessionStatus::Running => update.bump_epoch = true,
                // The calls the agent waits on will not be answered: they fail, and
                // the agent answers with what it has.
                SessionStatus::AwaitingToolResults => {
                    events.extend(abandon_pending_calls(rec, "force_answer"));
                    events.push(events::active_state("running", None));
                    update.status = Some(SessionStatus::Running);
                    update.pending_tool_calls = Some(json!([]));
                    update.bump_epoch = true;
                }
                _ => {}
            }
            Ok(Some(Plan {
                update,
                events,
                needs_slot: false,
            }))
        })
        .await
    }

    pub async fn cancel(&self, id: SessionId) -> Result<(), EngineError> {
        self.apply(id, Control::Cancel, |_rec| {
            Ok(Some(Plan {
                update: SessionUpdate {
                    status: Some(SessionStatus::Interrupted),
                    finished_at: Some(Some(now_ms())),
                    bump_epoch: true,
                    force_answer: Some(false),
                    idle_deadline: Some(None),
                    pending_tool_calls: Some(json!([])),
                    ..Default::default()
                },
                events: vec![events::flow("stop", USER), events::completion("stopped")],
                needs_slot: false,
            }))
        })
        .await
    }

    pub async fn tool_results(
        &self,
        id: SessionId,
        results: Vec<ToolResultIn>,
    ) -> Result<(), EngineError> {
        self.apply(id, Control::ToolResults, |rec| {
            plan_tool_results(rec, &results)
        })
        .await
    }

    /// Decides and commits one control, deciding again if the session moved meanwhile.
    /// `plan` returns `None` when the control turns out to change nothing.
    async fn apply<F>(&self, id: SessionId, control: Control, plan: F) -> Result<(), EngineError>
    where
        F: Fn(&SessionRecord) -> Result<Option<Plan>, EngineError>,
    {
        let mut record = self
            .store
            .get_session(id)
            .await?
            .ok_or(EngineError::NotFound)?;
        loop {
            match decide_control(record.status, control) {
                ControlDecision::NoOp => return Ok(()),
                ControlDecision::Conflict => {
                    return Err(EngineError::Conflict(format!(
                        "The session is {}: it cannot take {}.",
                        record.status.as_str(),
                        control.as_str()
                    )));
                }
                ControlDecision::Apply => {}
            }
            let Some(plan) = plan(&record)? else {
                return Ok(());
            };
            let guard = Guard {
                epoch: Some(record.epoch),
                statuses: Some(vec![record.status]),
                slot_limit: plan.needs_slot.then_some(self.config.slot_limit),
            };
            match self
                .store
                .commit(id, &guard, plan.update, plan.events)
                .await
            {
                Ok(committed) => {
                    tracing::info!(session_id = %id, control = control.as_str(), status = committed.status.as_str(), "control applied");
                    metrics::counter!("agentd_controls_total", "control" => control.as_str())
                        .increment(1);
                    self.scheduler.after_commit(&record, &committed).await;
                    return Ok(());
                }
                Err(StoreError::GuardFailed { current }) => record = *current,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

fn plan_message(rec: &SessionRecord, messages: &[MessageIn]) -> Plan {
    let now = now_ms();
    let message_events: Vec<NewEvent> = messages.iter().map(MessageIn::event).collect();
    match rec.status {
        // Buffered: the runner picks them up before its next model call (or, while
        // tool calls are open, right after their results).
        SessionStatus::Queued
        | SessionStatus::Pending
        | SessionStatus::Running
        | SessionStatus::AwaitingToolResults => Plan {
            update: SessionUpdate::default(),
            events: message_events,
            needs_slot: false,
        },
        // A message resumes a paused session, then is delivered.
        SessionStatus::Paused => {
            let mut plan = plan_resume(rec);
            plan.events.insert(0, events::flow("resume", USER));
            plan.events.extend(message_events);
            plan
        }
        // A new turn in the same context.
        SessionStatus::Idle => {
            let mut events = message_events;
            events.push(events::active_state("running", None));
            Plan {
                update: SessionUpdate {
                    status: Some(SessionStatus::Running),
                    idle_deadline: Some(None),
                    loop_state: Some(LoopState::new_turn(now, &rec.loop_state).to_json()),
                    ..Default::default()
                },
                events,
                needs_slot: false,
            }
        }
        // An ended session restarts with its history, if its organisation has a slot.
        SessionStatus::Completed
        | SessionStatus::Failed
        | SessionStatus::TimedOut
        | SessionStatus::Interrupted => {
            let mut events = vec![events::flow("restart", USER)];
            events.extend(message_events);
            Plan {
                update: SessionUpdate {
                    status: Some(SessionStatus::Pending),
                    finished_at: Some(None),
                    error: Some(None),
                    error_code: Some(None),
                    force_answer: Some(false),
                    bump_epoch: true,
                    loop_state: Some(LoopState::new_turn(now, &rec.loop_state).to_json()),
                    ..Default::default()
                },
                events,
                needs_slot: true,
            }
        }
    }
}

/// Where a paused session goes back to: the status it would be in had it not paused.
fn plan_resume(rec: &SessionRecord) -> Plan {
    let now = now_ms();
    let mut state = LoopState::from_json(&rec.loop_state);
    if let (Some(paused_at), Some(started)) = (state.paused_at, state.turn_started_at) {
        // Paused time is not working time.
        state.turn_started_at = Some(started + (now - paused_at).max(0));
    }
    state.paused_at = None;
    let pending_calls = rec
        .pending_tool_calls
        .as_array()
        .is_some_and(|calls| !calls.is_empty());
    let mut events = vec![events::run_status("running")];
    let mut update = SessionUpdate {
        loop_state: Some(state.to_json()),
        ..Default::default()
    };
    if rec.started_at.is_none() {
        update.status = Some(SessionStatus::Pending);
    } else if pending_calls && rec.force_answer {
        // A force_answer arrived while paused with calls open: they fail now.
        events.extend(abandon_pending_calls(rec, "force_answer"));
        events.push(events::active_state("running", None));
        update.pending_tool_calls = Some(json!([]));
        update.status = Some(SessionStatus::Running);
    } else if pending_calls {
        update.status = Some(SessionStatus::AwaitingToolResults);
    } else {
        update.status = Some(SessionStatus::Running);
    }
    Plan {
        update,
        events,
        needs_slot: false,
    }
}

fn abandon_pending_calls(rec: &SessionRecord, why: &str) -> Vec<NewEvent> {
    rec.pending_tool_calls
        .as_array()
        .into_iter()
        .flatten()
        .map(|call| {
            events::error_event(
                &format!("The tool call was abandoned ({why}): no result will come."),
                "engine",
                Some(call.clone()),
            )
        })
        .collect()
}

fn plan_tool_results(
    rec: &SessionRecord,
    results: &[ToolResultIn],
) -> Result<Option<Plan>, EngineError> {
    let mut pending: Vec<Value> = rec
        .pending_tool_calls
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut state = LoopState::from_json(&rec.loop_state);
    if pending.is_empty() {
        return Err(EngineError::Conflict(
            "The session is not waiting for tool results.".to_string(),
        ));
    }
    let mut events = Vec::new();
    for (i, result) in results.iter().enumerate() {
        let position = pending.iter().position(|call| call_matches(call, result));
        let Some(position) = position else {
            if result
                .id
                .as_ref()
                .is_some_and(|id| state.answered_calls.contains(id))
            {
                // Posted again (the SDK retries): it was recorded the first time.
                continue;
            }
            return Err(EngineError::Invalid {
                field: field_path(results.len(), i),
                message: format!(
                    "No pending tool call matches {}{}.",
                    result.tool_name,
                    result
                        .id
                        .as_deref()
                        .map(|id| format!(" (id {id})"))
                        .unwrap_or_default()
                ),
            });
        };
        let call = pending.remove(position);
        if let Some(id) = call.get("id").and_then(Value::as_str) {
            state.answered_calls.push(id.to_string());
        }
        events.push(match &result.outcome {
            ToolResultOutcome::Result(value) => events::tool_result(call, value.clone()),
            ToolResultOutcome::Error { error, origin } => {
                events::error_event(error, origin, Some(call))
            }
        });
    }
    if events.is_empty() {
        return Ok(None);
    }
    let mut update = SessionUpdate {
        pending_tool_calls: Some(Value::Array(pending.clone())),
        ..Default::default()
    };
    if pending.is_empty() {
        state.answered_calls.clear();
        if rec.status == SessionStatus::AwaitingToolResults {
            events.push(events::active_state("running", None));
            update.status = Some(SessionStatus::Running);
        }
    } else {
        // The SDK replaces its view of the open calls with this list.
        events.push(events::active_state(
            "awaiting_tool_results",
            Some(Value::Array(pending)),
        ));
    }
    update.loop_state = Some(state.to_json());
    Ok(Some(Plan {
        update,
        events,
        needs_slot: false,
    }))
}

fn call_matches(call: &Value, result: &ToolResultIn) -> bool {
    match (&result.id, call.get("id").and_then(Value::as_str)) {
        (Some(result_id), Some(call_id)) => result_id == call_id,
        _ => {
            call.get("tool_name").and_then(Value::as_str) == Some(result.tool_name.as_str())
                && normalise_args(call.get("args")) == normalise_args(Some(&result.args))
        }
    }
}

fn normalise_args(args: Option<&Value>) -> Value {
    match args {
        None | Some(Value::Null) => json!({}),
        Some(v) => v.clone(),
    }
}

fn field_path(count: usize, index: usize) -> Vec<String> {
    if count == 1 {
        vec!["tool_req".to_string()]
    } else {
        vec![
            "results".to_string(),
            index.to_string(),
            "tool_req".to_string(),
        ]
    }
}
