//! One session's runner: the agent loop of `agent-harness.md` §2.
//!
//! Each iteration reads the session, and if it is `pending` starts it, if `running`
//! takes one step: rebuild the context from new events, ask the model, run the tool
//! calls it returned, and commit everything the step produced in one guarded commit.
//! A step is recorded whole or not at all: a crash, a pause or a cancel in the middle
//! leaves no trace of it, and the step is taken again after a restart or a resume.
//!
//! While the model is thinking the runner watches the session's change feed; when a
//! control moves the epoch (pause, cancel, force_answer) the call is dropped at once.

use std::time::Duration;

use agentd_domain::time::{Millis, now_ms};
use agentd_domain::{
    ErrorCode, NewEvent, Outcome, SessionId, SessionSpec, SessionStatus, WebSpec, events,
};
use agentd_environment::{ActionResult, Opened};
use agentd_model_client::{
    ChatMessage, ChatRequest, ChatResponse, ContentPart, ModelEndpoint, ToolCall, ToolChoice,
    ToolSpec,
};
use agentd_store::{Blob, ChangeReceiver, Guard, SessionRecord, SessionUpdate, StoreError};
use base64::Engine as _;
use serde_json::{Map, Value, json};
use tracing::Instrument;

use crate::WebParts;
use crate::conversation::{self, Conversation};
use crate::loop_state::LoopState;
use crate::scheduler::{Inner, Scheduler};
use crate::{answer_format, tools};

/// Replies in a row without a usable tool call before the session fails `no_answer`.
const MAX_NO_TOOL_REPLIES: u32 = 3;
/// Answers failing `answer_format` before the session fails `answer_validation`.
const MAX_ANSWER_FAILURES: u32 = 3;

pub(crate) async fn run(inner: &Inner, scheduler: &Scheduler, id: SessionId) {
    let span = tracing::info_span!("session", session_id = %id);
    async {
        let mut conversation = Conversation::default();
        loop {
            if inner.shutdown.is_cancelled() {
                return;
            }
            // Subscribe before reading: a control committed after the read still
            // reaches this step through the feed.
            let mut feed = inner.store.subscribe(id);
            let record = match inner.store.get_session(id).await {
                Ok(Some(record)) => record,
                Ok(None) => return,
                Err(e) => {
                    tracing::error!(error = %e, "runner: cannot read the session");
                    return;
                }
            };
            let result = match record.status {
                SessionStatus::Pending => start(inner, scheduler, &record).await,
                SessionStatus::Running => {
                    step(inner, scheduler, &record, &mut conversation, &mut feed).await
                }
                _ => return,
            };
            if let Err(e) = result {
                tracing::error!(error = %e, "runner: store unavailable; the session resumes at the next start");
                return;
            }
        }
    }
    .instrument(span)
    .await
}

async fn start(
    inner: &Inner,
    scheduler: &Scheduler,
    record: &SessionRecord,
) -> Result<(), StoreError> {
    let now = now_ms();
    let mut state = LoopState::from_json(&record.loop_state);
    if state.turn_started_at.is_none() {
        state.turn_started_at = Some(now);
    }
    let update = SessionUpdate {
        status: Some(SessionStatus::Running),
        started_at: Some(Some(record.started_at.unwrap_or(now))),
        loop_state: Some(state.to_json()),
        ..Default::default()
    };
    let events = vec![events::request_start_dispatched(), events::agent_started()];
    commit_step(
        inner,
        scheduler,
        record,
        SessionStatus::Pending,
        update,
        events,
    )
    .await
}

/// Why the next model call must answer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Forced {
    No,
    ByClient,
    BySteps,
    ByTime,
}

async fn step(
    inner: &Inner,
    scheduler: &Scheduler,
    record: &SessionRecord,
    conversation: &mut Conversation,
    feed: &mut ChangeReceiver,
) -> Result<(), StoreError> {
    let spec: SessionSpec = match serde_json::from_value(record.spec.clone()) {
        Ok(spec) => spec,
        Err(e) => {
            let message = format!("The session's stored spec is unreadable: {e}");
            return fail(
                inner,
                scheduler,
                record,
                ErrorCode::Internal,
                &message,
                SessionUpdate::default(),
                Vec::new(),
            )
            .await;
        }
    };
    let Some(endpoint) = inner.config.model(spec.agent.model.as_deref()).cloned() else {
        let name = spec
            .agent
            .model
            .as_deref()
            .unwrap_or(&inner.config.default_model);
        let message = format!("Model '{name}' is not configured on this server.");
        return fail(
            inner,
            scheduler,
            record,
            ErrorCode::Internal,
            &message,
            SessionUpdate::default(),
            Vec::new(),
        )
        .await;
    };

    let new_events = inner
        .store
        .events(record.id, conversation.cursor, None)
        .await?;
    conversation.extend(&new_events, endpoint.vision);

    let now = now_ms();
    let mut state = LoopState::from_json(&record.loop_state);
    let turn_started_at = *state.turn_started_at.get_or_insert(now);
    let time_budget = spec.max_time_s.map(|s| (s * 1000.0) as Millis);
    let grace = inner.config.answer_grace.as_millis() as Millis;

    if let Some(forced_at) = state.time_forced_at {
        if now - forced_at >= grace {
            return time_out(inner, scheduler, record).await;
        }
    } else if time_budget.is_some_and(|budget| now - turn_started_at >= budget) {
        // The budget is spent: record it, so the grace period survives a restart.
        state.time_forced_at = Some(now);
        let update = SessionUpdate {
            loop_state: Some(state.to_json()),
            ..Default::default()
        };
        let events = vec![events::flow("force_answer", "max_time_s")];
        return commit_step(
            inner,
            scheduler,
            record,
            SessionStatus::Running,
            update,
            events,
        )
        .await;
    }

    let forced = if state.time_forced_at.is_some() {
        Forced::ByTime
    } else if record.force_answer {
        Forced::ByClient
    } else if spec.max_steps.is_some_and(|max| record.steps >= max) {
        Forced::BySteps
    } else {
        Forced::No
    };

    // The environment: its tools, and what the agent sees before it decides.
    let mut env_tools = Vec::new();
    let mut observed = None;
    if let Some(web) = spec.agent.web() {
        let Some(parts) = inner.web.as_ref() else {
            let message = "This server runs no browser, and the agent needs one.";
            return fail(
                inner,
                scheduler,
                record,
                ErrorCode::EnvironmentError,
                message,
                SessionUpdate::default(),
                Vec::new(),
            )
            .await;
        };
        env_tools = parts
            .environments
            .web_tools(web)
            .into_iter()
            .map(|t| ToolSpec {
                name: t.name,
                description: t.description,
                parameters: t.parameters,
            })
            .collect();
        let skip = web.lazy && record.steps == 0;
        if !skip {
            let last_url = state.page_url.clone();
            let observing = observe(parts, record, web, last_url, conversation, endpoint.vision);
            let result = tokio::select! {
                result = observing => result,
                _ = epoch_moved(feed, record.epoch) => return Ok(()),
                _ = inner.shutdown.cancelled() => return Ok(()),
            };
            match result {
                Ok((event, message, url)) => {
                    // Recorded with this step: a browser lost before the next one reopens here.
                    state.page_url = url.or(state.page_url.take());
                    observed = Some((event, message));
                }
                Err(message) => {
                    return fail(
                        inner,
                        scheduler,
                        record,
                        ErrorCode::EnvironmentError,
                        &message,
                        SessionUpdate::default(),
                        Vec::new(),
                    )
                    .await;
                }
            }
        }
    }
    let (observation_event, observation_message) = match observed {
        Some((event, message)) => (Some(event), Some(message)),
        None => (None, None),
    };
    let request = build_request(&spec, conversation, observation_message, &env_tools, forced);
    let deadline = match (forced, state.time_forced_at, time_budget) {
        (Forced::ByTime, Some(forced_at), _) => Some(forced_at + grace),
        (_, _, Some(budget)) => Some(turn_started_at + budget),
        _ => None,
    };
    let sleep_until_deadline = async {
        match deadline {
            Some(at) => {
                tokio::time::sleep(Duration::from_millis((at - now_ms()).max(0) as u64)).await
            }
            None => std::future::pending().await,
        }
    };
    tracing::debug!(step = record.steps + 1, forced = ?forced, "calling the model");
    let call_started = std::time::Instant::now();
    let model_label = endpoint.name.clone();
    let reply = tokio::select! {
        reply = inner.model.chat(&endpoint, &request) => reply,
        _ = epoch_moved(feed, record.epoch) => {
            tracing::debug!("model call abandoned: a control moved the session");
            metrics::counter!("agentd_model_calls_total", "model" => model_label, "result" => "abandoned").increment(1);
            return Ok(());
        }
        // Time is up: the next iteration records it and asks for the forced answer.
        _ = sleep_until_deadline => return Ok(()),
        _ = inner.shutdown.cancelled() => return Ok(()),
    };
    metrics::histogram!("agentd_model_call_seconds", "model" => model_label.clone())
        .record(call_started.elapsed().as_secs_f64());
    let result_label = if reply.is_ok() { "ok" } else { "error" };
    metrics::counter!("agentd_model_calls_total", "model" => model_label, "result" => result_label)
        .increment(1);
    let reply = match reply {
        Ok(reply) => reply,
        Err(e) => {
            tracing::warn!(error = %e, "model call failed");
            let message = e.to_string();
            return fail(
                inner,
                scheduler,
                record,
                ErrorCode::Internal,
                &message,
                SessionUpdate::default(),
                Vec::new(),
            )
            .await;
        }
    };
    let acting = handle_reply(
        inner, &spec, record, &endpoint, &mut state, forced, reply, &env_tools,
    );
    // Browser actions run here; a control that stops the session stops them too, but a
    // force_answer lets them finish (`agent-harness.md` §5) and the step is recorded
    // under the epoch it moved to, before the forced answer.
    let mut commit_epoch = record.epoch;
    let outcome = tokio::select! {
        outcome = acting => outcome,
        _ = stopped_while_acting(feed, record.epoch, &mut commit_epoch) => return Ok(()),
        _ = inner.shutdown.cancelled() => return Ok(()),
    };
    let moved;
    let record = if commit_epoch == record.epoch {
        record
    } else {
        moved = SessionRecord {
            epoch: commit_epoch,
            ..record.clone()
        };
        &moved
    };
    let StepOutcome {
        mut events,
        mut update,
        end,
    } = outcome;
    if let Some(event) = observation_event {
        events.insert(0, event);
    }
    let now = now_ms();
    match end {
        TurnEnd::Continue => {}
        TurnEnd::Answered { answer, outcome } => {
            update.search_answer = Some(answer_text(&answer));
            update.latest_answer = Some(Some(answer));
            update.outcome = Some(Some(outcome));
            update.force_answer = Some(false);
            state.time_forced_at = None;
            match spec.idle_timeout_s {
                Some(idle) => {
                    update.status = Some(SessionStatus::Idle);
                    update.idle_deadline = Some(Some(now + (idle as Millis) * 1000));
                    events.push(events::active_state("idle", None));
                }
                None => {
                    update.status = Some(SessionStatus::Completed);
                    update.finished_at = Some(Some(now));
                    events.push(events::completion("finished"));
                }
            }
        }
        TurnEnd::AwaitTools(calls) => {
            state.answered_calls.clear();
            update.status = Some(SessionStatus::AwaitingToolResults);
            update.pending_tool_calls = Some(Value::Array(calls.clone()));
            events.push(events::active_state(
                "awaiting_tool_results",
                Some(Value::Array(calls)),
            ));
        }
        TurnEnd::Fail { code, message } => {
            if forced == Forced::ByTime {
                return time_out_with(inner, scheduler, record, update, events).await;
            }
            return fail(inner, scheduler, record, code, &message, update, events).await;
        }
    }
    update.loop_state = Some(state.to_json());
    commit_step(
        inner,
        scheduler,
        record,
        SessionStatus::Running,
        update,
        events,
    )
    .await
}

enum TurnEnd {
    Continue,
    Answered { answer: Value, outcome: Outcome },
    AwaitTools(Vec<Value>),
    Fail { code: ErrorCode, message: String },
}

struct StepOutcome {
    events: Vec<NewEvent>,
    update: SessionUpdate,
    end: TurnEnd,
}

/// Turns a model reply into the step's events: the policy event, one result or error
/// per tool call (environment tools carried out in order), the answer, and the metrics.
#[allow(clippy::too_many_arguments)]
async fn handle_reply(
    inner: &Inner,
    spec: &SessionSpec,
    record: &SessionRecord,
    endpoint: &ModelEndpoint,
    state: &mut LoopState,
    forced: Forced,
    reply: ChatResponse,
    env_tools: &[ToolSpec],
) -> StepOutcome {
    let mut events = Vec::new();
    if forced == Forced::BySteps {
        events.push(events::flow("force_answer", "max_steps"));
    }
    let tool_reqs: Vec<Value> = reply.tool_calls.iter().map(tool_request).collect();
    let mut validation_errors = Vec::new();
    if reply.tool_calls.is_empty() {
        validation_errors.push(format!(
            "Your reply called no tool. Every reply must call a tool; to finish, call `answer`. Available tools: {}.",
            tool_names(spec, env_tools).join(", ")
        ));
    }
    events.push(events::policy(
        reply.content.as_deref(),
        reply.reasoning_content.as_deref(),
        tool_reqs.clone(),
        validation_errors,
    ));

    let mut end = TurnEnd::Continue;
    let mut answered: Option<(Value, Outcome)> = None;
    let mut pending = Vec::new();
    let mut answer_failed = false;
    let mut acted = false;
    for (call, req) in reply.tool_calls.iter().zip(tool_reqs) {
        if answered.is_some() {
            events.push(events::error_event(
                "Not run: the task was already answered in this reply.",
                "agent",
                Some(req),
            ));
            continue;
        }
        if forced != Forced::No && call.name != tools::ANSWER {
            events.push(events::error_event(
                "Only `answer` may be called now: give your final answer.",
                "agent",
                Some(req),
            ));
            continue;
        }
        let args = match tools::arguments_object(&call.arguments) {
            Ok(args) => args,
            Err(e) => {
                events.push(events::error_event(
                    &format!("Invalid call to {}: {e}.", call.name),
                    "agent",
                    Some(req),
                ));
                if call.name == tools::ANSWER {
                    answer_failed = true;
                }
                continue;
            }
        };
        match call.name.as_str() {
            tools::THINK => events.push(events::tool_result(req, json!("noted"))),
            tools::ANSWER => match read_answer(spec, &args) {
                Ok((answer, outcome)) => {
                    events.push(events::tool_result(req, json!("accepted")));
                    events.push(events::answer(answer.clone(), outcome));
                    answered = Some((answer, outcome));
                }
                Err(e) => {
                    answer_failed = true;
                    events.push(events::error_event(&e, "agent", Some(req)));
                }
            },
            name if env_tools.iter().any(|t| t.name == name) => {
                let environments = inner.web.as_ref().map(|w| w.environments.clone());
                let Some(environments) = environments else {
                    continue;
                };
                acted = true;
                // A lazy browser is not open at step 0; a web tool called then opens it.
                if let Some(web) = spec.agent.web().filter(|w| w.lazy && record.steps == 0)
                    && let Err(e) = environments.open(record.id, web, None).await
                {
                    events.push(events::error_event(
                        &e.to_string(),
                        "environment",
                        Some(req),
                    ));
                    continue;
                }
                match environments.act(record.id, name, &args).await {
                    Ok(ActionResult::Done(result)) => events.push(events::tool_result(req, result)),
                    Ok(ActionResult::Failed(error)) => {
                        events.push(events::error_event(&error, "environment", Some(req)))
                    }
                    Err(e) => events.push(events::error_event(
                        &format!("{e}. The browser is restored at the next step."),
                        "environment",
                        Some(req),
                    )),
                }
            }
            name => match spec.agent.tools.iter().find(|t| t.name == name) {
                Some(tool) => {
                    let checked = match &tool.input_schema {
                        Some(schema) => answer_format::validate(schema, &Value::Object(args)),
                        None => Ok(()),
                    };
                    match checked {
                        Ok(()) => pending.push(req),
                        Err(e) => events.push(events::error_event(
                            &format!("The arguments of {name} do not match its input schema: {e}"),
                            "agent",
                            Some(req),
                        )),
                    }
                }
                None => events.push(events::error_event(
                    &format!(
                        "Unknown tool '{name}'. Available tools: {}.",
                        tool_names(spec, env_tools).join(", ")
                    ),
                    "agent",
                    Some(req),
                )),
            },
        }
    }

    if acted
        && let Some(web) = &inner.web
        && let Some(url) = web.environments.location(record.id).await
    {
        state.page_url = Some(url);
    }
    if reply.tool_calls.is_empty() {
        state.no_tool_streak += 1;
    } else {
        state.no_tool_streak = 0;
    }
    if answer_failed {
        state.answer_failures += 1;
    }

    if let Some((answer, outcome)) = answered {
        for call in pending.drain(..) {
            events.push(events::error_event(
                "Not run: the task was answered in the same reply.",
                "agent",
                Some(call),
            ));
        }
        end = TurnEnd::Answered { answer, outcome };
    } else if state.answer_failures >= MAX_ANSWER_FAILURES && spec.agent.answer_format.is_some() {
        end = TurnEnd::Fail {
            code: ErrorCode::AnswerValidation,
            message: format!(
                "The agent's answer failed the answer format {} times.",
                state.answer_failures
            ),
        };
    } else if forced != Forced::No {
        end = TurnEnd::Fail {
            code: ErrorCode::NoAnswer,
            message: "The agent gave no final answer when it had to.".to_string(),
        };
    } else if state.no_tool_streak >= MAX_NO_TOOL_REPLIES {
        end = TurnEnd::Fail {
            code: ErrorCode::NoAnswer,
            message: format!(
                "The model replied {} times in a row without calling a tool.",
                state.no_tool_streak
            ),
        };
    } else if !pending.is_empty() {
        end = TurnEnd::AwaitTools(pending);
    }

    let steps = record.steps + 1;
    let usage = add_usage(&record.usage, &endpoint.name, &reply);
    events.push(events::metrics(metrics_json(steps, &usage)));
    let update = SessionUpdate {
        steps: Some(steps),
        usage: Some(usage),
        ..Default::default()
    };
    StepOutcome {
        events,
        update,
        end,
    }
}

fn read_answer(spec: &SessionSpec, args: &Map<String, Value>) -> Result<(Value, Outcome), String> {
    let outcome = match args.get("outcome").and_then(Value::as_str) {
        Some(text) => Outcome::parse(text).ok_or_else(|| {
            format!("Invalid answer: outcome must be one of success, partial, infeasible, blocked (got '{text}').")
        })?,
        None => {
            return Err(
                "Invalid answer: outcome is required (success, partial, infeasible or blocked)."
                    .to_string(),
            );
        }
    };
    let Some(answer) = args.get("answer").cloned() else {
        return Err("Invalid answer: the answer argument is required.".to_string());
    };
    match &spec.agent.answer_format {
        Some(schema) => {
            // Models often send the object as JSON text.
            let answer = match answer {
                Value::String(text) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
                other => other,
            };
            answer_format::validate(schema, &answer).map_err(|e| {
                format!("The answer does not match the required answer format: {e}. Call answer again with a corrected answer.")
            })?;
            Ok((answer, outcome))
        }
        None => {
            let answer = match answer {
                Value::String(_) | Value::Object(_) => answer,
                Value::Null => return Err("Invalid answer: the answer is empty.".to_string()),
                other => Value::String(other.to_string()),
            };
            Ok((answer, outcome))
        }
    }
}

fn tool_request(call: &ToolCall) -> Value {
    let args = match tools::arguments_object(&call.arguments) {
        Ok(map) => Value::Object(map),
        Err(_) => json!({}),
    };
    json!({"tool_name": call.name, "args": args, "id": call.id})
}

fn tool_names(spec: &SessionSpec, env_tools: &[ToolSpec]) -> Vec<String> {
    let mut names = vec![tools::ANSWER.to_string(), tools::THINK.to_string()];
    names.extend(env_tools.iter().map(|t| t.name.clone()));
    names.extend(spec.agent.tools.iter().map(|t| t.name.clone()));
    names
}

/// Opens (or restores) the session's browser, takes its observation and stores the
/// screenshot as a resource. Returns the observation event, the model's view of it and
/// the page's address.
async fn observe(
    parts: &WebParts,
    record: &SessionRecord,
    web: &WebSpec,
    last_url: Option<String>,
    conversation: &mut Conversation,
    vision: bool,
) -> Result<(NewEvent, ChatMessage, Option<String>), String> {
    let environments = &parts.environments;
    let mut opened = environments
        .open(record.id, web, last_url.as_deref())
        .await
        .map_err(|e| e.to_string())?;
    let observation = match environments.observe(record.id).await {
        Ok(observation) => observation,
        // The browser went between open and observe: it is opened again, once.
        Err(e) => {
            tracing::warn!(error = %e, "observation failed; reopening the browser");
            opened = environments
                .open(record.id, web, last_url.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            environments
                .observe(record.id)
                .await
                .map_err(|e| e.to_string())?
        }
    };
    let mut text = observation.text;
    if let Opened::Restored { url } = &opened {
        tracing::info!(%url, "browser restored at the session's last page");
        text = format!(
            "Note: the browser was restored after a restart and reopened {url}. What the page did not save (typed text, other tabs) is gone.\n{text}"
        );
    }
    let mut image_url = None;
    let mut data_url = None;
    if let Some(shot) = observation.screenshot {
        let key = format!("step-{:05}-{}.jpg", record.steps + 1, record.epoch);
        let blob = Blob {
            content_type: shot.media_type.to_string(),
            bytes: shot.bytes,
        };
        let encoded = if vision {
            let bytes = blob.bytes.clone();
            tokio::task::spawn_blocking(move || {
                base64::engine::general_purpose::STANDARD.encode(bytes)
            })
            .await
            .ok()
        } else {
            None
        };
        parts
            .blobs
            .put(record.id, crate::retention::SCREENSHOTS, &key, blob)
            .await
            .map_err(|e| format!("cannot store the screenshot: {e}"))?;
        let url = format!(
            "{}/api/v2/sessions/{}/resources/{}/{key}",
            parts.public_url.trim_end_matches('/'),
            record.id,
            crate::retention::SCREENSHOTS,
        );
        if let Some(encoded) = encoded {
            let data = format!("data:{};base64,{encoded}", shot.media_type);
            conversation.screenshots.insert(url.clone(), data.clone());
            data_url = Some(data);
        }
        image_url = Some(url);
    }
    let url = observation.metadata["url"].as_str().map(str::to_string);
    let event = events::observation(
        observation.kind,
        &text,
        image_url.as_deref(),
        observation.metadata,
    );
    Ok((
        event,
        conversation::observation_message(&text, data_url),
        url,
    ))
}

fn answer_text(answer: &Value) -> String {
    match answer {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn build_request(
    spec: &SessionSpec,
    conversation: &Conversation,
    observation: Option<ChatMessage>,
    env_tools: &[ToolSpec],
    forced: Forced,
) -> ChatRequest {
    let mut messages = vec![ChatMessage::System(system_prompt(spec))];
    messages.extend(conversation.messages.iter().cloned());
    messages.extend(observation);
    if forced != Forced::No {
        let why = match forced {
            Forced::ByClient => "the user asked for your answer now",
            Forced::BySteps => "the step budget is spent",
            Forced::ByTime => "the time budget is spent",
            Forced::No => "",
        };
        messages.push(ChatMessage::User(vec![ContentPart::Text(format!(
            "Stop working and give your final answer now ({why}): call `answer` with the best answer you have and an honest outcome."
        ))]));
    }
    let (tools, tool_choice) = if forced == Forced::No {
        let mut tools = tools::all_tools(&spec.agent);
        tools.extend(env_tools.iter().cloned());
        (tools, ToolChoice::Auto)
    } else {
        (
            vec![tools::answer_tool(&spec.agent)],
            ToolChoice::Function(tools::ANSWER.to_string()),
        )
    };
    ChatRequest {
        messages,
        tools,
        tool_choice,
    }
}

fn system_prompt(spec: &SessionSpec) -> String {
    let agent = &spec.agent;
    let mut prompt = format!("You are {}, an agent. {}\n", agent.name, agent.description);
    prompt.push_str(
        "Work step by step. Every reply must call at least one tool. When the task is done, \
         call `answer` with your final answer and an honest outcome.\n",
    );
    if agent.web().is_some() {
        prompt.push_str(
            "You act in a web browser. Before each step you see the page: its URL, title and tabs, \
             and a screenshot in visual mode. Coordinates are CSS pixels of the viewport, (0,0) at the \
             top left, as in the screenshot. A tool that fails tells you why; adjust and go on.\n",
        );
    }
    if let Some(schema) = &agent.answer_format {
        prompt.push_str(&format!(
            "Your final answer must be a JSON object matching this JSON Schema: {schema}\n"
        ));
    }
    if let Some(timezone) = &spec.timezone {
        prompt.push_str(&format!("The user's time zone is {timezone}.\n"));
    }
    if let Some(instructions) = &agent.instructions {
        prompt.push('\n');
        prompt.push_str(instructions);
        prompt.push('\n');
    }
    prompt
}

/// Token usage per model, as `SessionStatus.usage_per_model` lists it.
fn add_usage(usage: &Value, model: &str, reply: &ChatResponse) -> Value {
    let mut entries: Vec<Value> = usage.as_array().cloned().unwrap_or_default();
    let position = entries
        .iter()
        .position(|e| e.get("name").and_then(Value::as_str) == Some(model));
    let entry = match position {
        Some(i) => &mut entries[i],
        None => {
            entries.push(json!({"name": model, "input_tokens": 0, "output_tokens": 0, "reasoning_tokens": 0, "cached_tokens": 0}));
            entries.last_mut().expect("just pushed")
        }
    };
    let add = |entry: &mut Value, key: &str, amount: u64| {
        let current = entry.get(key).and_then(Value::as_u64).unwrap_or(0);
        entry[key] = json!(current + amount);
    };
    add(entry, "input_tokens", reply.usage.input_tokens);
    add(entry, "output_tokens", reply.usage.output_tokens);
    add(entry, "reasoning_tokens", reply.usage.reasoning_tokens);
    add(entry, "cached_tokens", reply.usage.cached_tokens);
    Value::Array(entries)
}

/// `Metrics`; costs are null because self-hosted models have no price.
pub fn metrics_json(steps: u32, usage: &Value) -> Value {
    let cost_per_model: Vec<Value> = usage
        .as_array()
        .into_iter()
        .flatten()
        .map(|entry| {
            let mut entry = entry.clone();
            for key in ["input_cost", "output_cost", "reasoning_cost", "total_cost"] {
                entry[key] = Value::Null;
            }
            entry
        })
        .collect();
    json!({
        "steps": steps,
        "cost_per_model": cost_per_model,
        "input_cost": null, "output_cost": null, "reasoning_cost": null, "total_cost": null,
    })
}

async fn epoch_moved(feed: &mut ChangeReceiver, epoch: u64) {
    loop {
        if feed.changed().await.is_err() {
            return std::future::pending().await;
        }
        let moved = feed.borrow_and_update().as_ref().is_some_and(|change| {
            change.session.epoch != epoch || change.session.status != SessionStatus::Running
        });
        if moved {
            return;
        }
    }
}

/// Like [`epoch_moved`], except that a force_answer (the session still running, its flag
/// set) does not stop the step: `latest` follows the epoch it moves to.
async fn stopped_while_acting(feed: &mut ChangeReceiver, epoch: u64, latest: &mut u64) {
    loop {
        if feed.changed().await.is_err() {
            return std::future::pending().await;
        }
        let seen = feed.borrow_and_update().as_ref().map(|change| {
            (
                change.session.epoch,
                change.session.status,
                change.session.force_answer,
            )
        });
        match seen {
            Some((now, SessionStatus::Running, true)) => *latest = now,
            Some((now, status, _)) if now != epoch || status != SessionStatus::Running => return,
            _ => {}
        }
    }
}

async fn commit_step(
    inner: &Inner,
    scheduler: &Scheduler,
    record: &SessionRecord,
    expected: SessionStatus,
    update: SessionUpdate,
    events: Vec<NewEvent>,
) -> Result<(), StoreError> {
    let guard = Guard {
        epoch: Some(record.epoch),
        statuses: Some(vec![expected]),
        slot_limit: None,
    };
    match inner.store.commit(record.id, &guard, update, events).await {
        Ok(committed) => {
            if committed.steps > record.steps {
                metrics::counter!("agentd_steps_total").increment(1);
            }
            if committed.status != record.status {
                metrics::counter!("agentd_session_transitions_total", "to" => committed.status.as_str()).increment(1);
                tracing::info!(
                    from = record.status.as_str(),
                    to = committed.status.as_str(),
                    steps = committed.steps,
                    "session status"
                );
            }
            scheduler.after_commit(record, &committed).await;
            Ok(())
        }
        // A control got there first: this step's work is dropped; the loop looks again.
        Err(StoreError::GuardFailed { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Ends the session `failed`. `update` and `events` are what the failing step itself
/// produced (its policy event, counters), recorded with the failure.
async fn fail(
    inner: &Inner,
    scheduler: &Scheduler,
    record: &SessionRecord,
    code: ErrorCode,
    message: &str,
    mut update: SessionUpdate,
    mut events: Vec<NewEvent>,
) -> Result<(), StoreError> {
    tracing::warn!(
        error_code = code.as_str(),
        error = message,
        "session failed"
    );
    events.push(events::agent_error(message, code));
    update.status = Some(SessionStatus::Failed);
    update.finished_at = Some(Some(now_ms()));
    update.error = Some(Some(message.to_string()));
    update.error_code = Some(Some(code));
    update.force_answer = Some(false);
    commit_step(
        inner,
        scheduler,
        record,
        SessionStatus::Running,
        update,
        events,
    )
    .await
}

async fn time_out(
    inner: &Inner,
    scheduler: &Scheduler,
    record: &SessionRecord,
) -> Result<(), StoreError> {
    time_out_with(
        inner,
        scheduler,
        record,
        SessionUpdate::default(),
        Vec::new(),
    )
    .await
}

async fn time_out_with(
    inner: &Inner,
    scheduler: &Scheduler,
    record: &SessionRecord,
    mut update: SessionUpdate,
    mut events: Vec<NewEvent>,
) -> Result<(), StoreError> {
    let message = "The time budget ran out before the agent answered.";
    tracing::warn!("session timed out");
    events.push(events::agent_error(message, ErrorCode::Timeout));
    events.push(events::completion("timed_out"));
    update.status = Some(SessionStatus::TimedOut);
    update.finished_at = Some(Some(now_ms()));
    update.error = Some(Some(message.to_string()));
    update.error_code = Some(Some(ErrorCode::Timeout));
    update.force_answer = Some(false);
    commit_step(
        inner,
        scheduler,
        record,
        SessionStatus::Running,
        update,
        events,
    )
    .await
}
