"""An interactive session (`idle_timeout_s` set): idle after each answer, a message starts the next turn."""

from __future__ import annotations

import json
from typing import Any

from hai_agents.core.api_error import ApiError

from harness import (
    RUN_TIMEOUT_S,
    ScriptedModel,
    agent_events,
    answer_reply,
    describe_events,
    inline_agent,
    wait_until,
)


def test_idle_session_takes_a_second_turn_with_its_context(
    client: Any, scripted_model: ScriptedModel, tag: str
) -> None:
    first_answer = "Noted: saffron."
    # Turn 1 answers; turn 2 (one assistant message in the context) echoes the new user message.
    scripted_model.add_rule(tag, [answer_reply(first_answer), {"echo_user": True}])
    handle = client.start_session(
        agent=inline_agent("sdk-idle"),
        messages=f"{tag} Remember the code word saffron.",
        idle_timeout_s=60,
    )

    try:
        first = handle.wait_for_completion(timeout_seconds=RUN_TIMEOUT_S)
        assert first.status == "idle", describe_events(first.events)
        assert first.answer == first_answer
        assert first.outcome == "success"
        assert handle.status().status == "idle"

        second_message = f"Second turn for {tag}: which code word did I give you?"
        handle.send_message(second_message)

        # The status may pass through running and back to idle between two polls, so wait on
        # the answer itself, then on the status.
        wait_until(
            lambda: second_message in str(handle.get().latest_answer or ""),
            timeout=RUN_TIMEOUT_S,
            message=lambda: f"no second answer; latest_answer={handle.get().latest_answer!r}",
        )
        wait_until(lambda: handle.status().status == "idle", timeout=RUN_TIMEOUT_S, message="not idle again")

        second = handle.wait_for_completion(from_index=first.next_from_index, timeout_seconds=RUN_TIMEOUT_S)
        assert second.status == "idle", describe_events(second.events)
        assert isinstance(second.answer, str) and second_message in second.answer
        second_turn_answers = [a["answer"] for a in agent_events(second.events, "answer_event")]
        assert len(second_turn_answers) == 1 and second_message in second_turn_answers[0], describe_events(
            second.events
        )

        # The second model call carried the whole first turn.
        requests = scripted_model.requests_for(tag)
        assert len(requests) == 2
        context = json.dumps(requests[1]["messages"])
        assert "saffron" in context
        assert first_answer in context, "the first turn's answer is missing from the second turn's context"
        assert second_message in context
        assert any(m.get("role") == "assistant" for m in requests[1]["messages"])
    finally:
        # Do not leave an idle session waiting for a minute.
        try:
            handle.cancel()
        except ApiError:
            pass  # already ended: nothing to clean up
