"""Failures as the SDK reports them: failed sessions, and API errors raised as SDK exceptions."""

from __future__ import annotations

import uuid
from typing import Any, Dict

import pytest
from hai_agents import UnprocessableEntityError
from hai_agents.core.api_error import ApiError

from conftest import ENV_MODEL_NAME, OTHER_ORG, UNREACHABLE_MODEL_ID
from harness import (
    HOLD_MS,
    RUN_TIMEOUT_S,
    AgentdServer,
    ScriptedModel,
    describe_events,
    events_of_type,
    inline_agent,
    think_reply,
)


def test_model_that_never_calls_a_tool_fails_with_no_answer(
    client: Any, scripted_model: ScriptedModel, tag: str
) -> None:
    scripted_model.add_rule(tag, [{"content": "I would rather chat than call a tool."}])

    result = client.run_session(
        agent=inline_agent("sdk-chatty"), messages=f"{tag} Answer me properly.", timeout_seconds=RUN_TIMEOUT_S
    )

    assert result.status == "failed", describe_events(result.events)
    assert result.error_code == "no_answer"
    assert result.error, "a failed session must say why"
    assert result.answer is None
    # Three replies without a tool call in a row, then the session gives up.
    assert len(scripted_model.requests_for(tag)) == 3


def test_unreachable_model_fails_the_session_naming_the_model(
    unreachable_client: Any, unreachable_model_url: str, tag: str
) -> None:
    result = unreachable_client.run_session(
        agent=inline_agent("sdk-unreachable"), messages=f"{tag} Hello?", timeout_seconds=RUN_TIMEOUT_S
    )

    assert result.status == "failed", describe_events(result.events)
    assert result.error_code == "internal"
    error = result.error or ""
    # The error names the model (by the id sent upstream or by its configured name) and where
    # the call went, so an operator can tell which endpoint is down.
    assert UNREACHABLE_MODEL_ID in error or f"'{ENV_MODEL_NAME}'" in error, error
    assert unreachable_model_url.split("//", 1)[1].split("/", 1)[0] in error, error
    assert events_of_type(result.events, "AgentErrorEvent"), describe_events(result.events)


@pytest.mark.parametrize(
    ("bad_fields", "named_field"),
    [
        pytest.param({"max_steps": "a few"}, "max_steps", id="max_steps-not-an-integer"),
        pytest.param(
            {"agent": {"description": "an agent without a name", "environments": []}}, "agent", id="agent-without-name"
        ),
    ],
)
def test_bad_create_body_raises_unprocessable_entity(
    client: Any, tag: str, bad_fields: Dict[str, Any], named_field: str
) -> None:
    params: Dict[str, Any] = {"agent": inline_agent("sdk-invalid"), "messages": f"{tag} never runs", **bad_fields}

    with pytest.raises(UnprocessableEntityError) as raised:
        client.start_session(**params)

    error = raised.value
    assert error.status_code == 422
    detail = error.body.detail
    assert detail, "a 422 must list what is wrong"
    locations = [[str(part) for part in item.loc] for item in detail]
    assert any(named_field in loc for loc in locations), locations
    assert all(item.msg for item in detail)


def test_unknown_session_id_is_not_found(client: Any) -> None:
    handle = client.session(str(uuid.uuid4()))
    for read in (handle.status, handle.get, handle.changes):
        with pytest.raises(ApiError) as raised:
            read()
        assert raised.value.status_code == 404, f"{read.__name__}: {raised.value}"


def test_session_of_another_organisation_is_not_found(
    client: Any, agentd: AgentdServer, scripted_model: ScriptedModel, tag: str
) -> None:
    scripted_model.add_rule(tag, [think_reply("busy", delay_ms=HOLD_MS)])
    owned = client.start_session(agent=inline_agent("sdk-private"), messages=f"{tag} Stay busy.")
    outsider = agentd.client(org=OTHER_ORG)
    try:
        foreign = outsider.session(owned.id)
        for action in (foreign.status, foreign.get, foreign.cancel):
            with pytest.raises(ApiError) as raised:
                action()
            assert raised.value.status_code == 404, f"{action.__name__}: {raised.value}"
        # The outsider's cancel did nothing.
        assert owned.status().status not in ("interrupted", "failed", "completed")
    finally:
        outsider.close()
        owned.cancel()
