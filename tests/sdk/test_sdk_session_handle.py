"""`Client.start_session` and the `SessionHandle` controls on a live session."""

from __future__ import annotations

from typing import Any, List

import pytest
from hai_agents.core.api_error import ApiError

from harness import (
    CONTROL_DEADLINE_S,
    HOLD_MS,
    RUN_TIMEOUT_S,
    ScriptedModel,
    agent_events,
    answer_reply,
    describe_events,
    event_dicts,
    events_of_type,
    first_user_text,
    inline_agent,
    message_text,
    offered_tool_names,
    think_reply,
    wait_until,
)


def wait_for_status(handle: Any, wanted: str, timeout: float) -> None:
    """Poll `handle.status()` until it reports `wanted`, failing after `timeout` seconds."""
    seen: List[str] = []

    def reached() -> bool:
        status = handle.status().status
        if not seen or seen[-1] != status:
            seen.append(status)
        return status == wanted

    wait_until(reached, timeout=timeout, message=lambda: f"status never became {wanted!r}; saw {seen}")


def last_user_text(chat_request: dict) -> str:
    users = [m for m in chat_request.get("messages") or [] if m.get("role") == "user"]
    return message_text(users[-1].get("content")) if users else ""


def test_handle_reads_state_and_running_session_takes_a_message(
    client: Any, scripted_model: ScriptedModel, tag: str
) -> None:
    # Step 1 thinks while we send a message; step 2 answers with the latest user message.
    scripted_model.add_rule(tag, [think_reply("waiting for the follow-up", delay_ms=HOLD_MS), {"echo_user": True}])

    handle = client.start_session(agent=inline_agent("sdk-handle"), messages=f"{tag} Wait for my follow-up.")

    assert handle.status().status in ("pending", "running")
    session = handle.get()
    assert session.id == handle.id
    assert session.request.agent.name == "sdk-handle"
    assert session.latest_answer is None
    changes = handle.changes(from_index=0)
    assert changes is not None, "/changes must answer 200 once the session has events"
    assert changes.first_index == 0
    assert changes.new_events and changes.new_events[0].type == "RequestStartEvent"

    scripted_model.wait_for_requests(tag, 1)
    wait_for_status(handle, "running", timeout=5.0)
    follow_up = f"Follow-up for {tag}: the word is heliotrope."
    handle.send_message(follow_up)

    result = handle.wait_for_completion(timeout_seconds=RUN_TIMEOUT_S)

    assert result.status == "completed", describe_events(result.events)
    assert isinstance(result.answer, str) and follow_up in result.answer
    requests = scripted_model.requests_for(tag)
    assert len(requests) == 2
    assert follow_up not in last_user_text(requests[0])
    assert follow_up in last_user_text(requests[1]), "the message was not added before the next model call"
    assert handle.status().status == "completed"
    assert handle.get().latest_answer == result.answer
    # Reading the log again from a later index returns exactly its tail.
    whole = handle.changes(from_index=0, wait_for_seconds=0)
    tail = handle.changes(from_index=1, wait_for_seconds=0)
    assert whole is not None and tail is not None
    assert tail.first_index == 1
    assert event_dicts(tail.new_events or []) == event_dicts(whole.new_events or [])[1:]


def test_handle_pause_takes_effect_mid_model_call_and_resume_continues(
    client: Any, scripted_model: ScriptedModel, tag: str
) -> None:
    scripted_model.add_rule(tag, [answer_reply("finished after resume", delay_ms=HOLD_MS)])
    handle = client.start_session(agent=inline_agent("sdk-pause"), messages=f"{tag} Take your time.")
    scripted_model.wait_for_requests(tag, 1)  # the model call is now in flight

    handle.pause()
    wait_for_status(handle, "paused", timeout=CONTROL_DEADLINE_S)
    assert handle.status().status == "paused"

    handle.resume()
    result = handle.wait_for_completion(timeout_seconds=RUN_TIMEOUT_S)

    assert result.status == "completed", describe_events(result.events)
    assert result.answer == "finished after resume"
    run_states = [d.get("status") for d in events_of_type(result.events, "AgentRunStatusChangeEvent")]
    assert "paused" in run_states, describe_events(result.events)
    assert "running" in run_states[run_states.index("paused") :], describe_events(result.events)
    flows = [d.get("flow") for d in agent_events(result.events, "flow_event")]
    assert "pause" in flows and "resume" in flows, describe_events(result.events)
    # The abandoned call was made again after the resume.
    assert len(scripted_model.requests_for(tag)) == 2


def test_handle_force_answer_completes_the_session(client: Any, scripted_model: ScriptedModel, tag: str) -> None:
    scripted_model.add_rule(tag, [answer_reply("forced answer", outcome="partial", delay_ms=HOLD_MS)])
    handle = client.start_session(agent=inline_agent("sdk-force"), messages=f"{tag} Explore as long as you like.")
    first_call = scripted_model.wait_for_requests(tag, 1)[0]
    assert "think" in offered_tool_names(first_call)

    handle.force_answer()
    result = handle.wait_for_completion(timeout_seconds=RUN_TIMEOUT_S)

    assert result.status == "completed", describe_events(result.events)
    assert result.answer == "forced answer"
    assert result.outcome == "partial"
    flows = [d.get("flow") for d in agent_events(result.events, "flow_event")]
    assert "force_answer" in flows, describe_events(result.events)
    # The in-flight call was abandoned for a call that offers only the answer tool and forces it.
    requests = scripted_model.requests_for(tag)
    assert len(requests) == 2
    forced = requests[1]
    assert first_user_text(forced) == first_user_text(first_call)
    assert offered_tool_names(forced) == ["answer"]
    assert forced.get("tool_choice") not in (None, "auto", "none"), forced.get("tool_choice")


def test_handle_cancel_interrupts_mid_model_call(client: Any, scripted_model: ScriptedModel, tag: str) -> None:
    # The model thinks forever (the last reply repeats), each call held in flight.
    scripted_model.add_rule(tag, [think_reply("still pondering", delay_ms=HOLD_MS)])
    handle = client.start_session(agent=inline_agent("sdk-cancel"), messages=f"{tag} Ponder forever.")
    scripted_model.wait_for_requests(tag, 1)

    handle.cancel()
    wait_for_status(handle, "interrupted", timeout=CONTROL_DEADLINE_S)

    result = handle.wait_for_completion(timeout_seconds=RUN_TIMEOUT_S)
    assert result.status == "interrupted"
    assert result.answer is None
    reasons = [d.get("reason") for d in events_of_type(result.events, "AgentCompletionEvent")]
    assert reasons == ["stopped"], describe_events(result.events)
    # A control on a settled session is a conflict.
    with pytest.raises(ApiError) as conflict:
        handle.pause()
    assert conflict.value.status_code == 409
