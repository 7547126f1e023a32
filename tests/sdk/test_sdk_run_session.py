"""`Client.run_session`: plain answers, `answer_schema` (inline and catalog agents) and client-side tools."""

from __future__ import annotations

import json
from typing import Any, List

import pydantic

from conftest import CATALOG_AGENT, CATALOG_INSTRUCTIONS, CATALOG_MODEL_ID, MAIN_MODEL_ID
from harness import (
    RUN_TIMEOUT_S,
    ScriptedModel,
    agent_events,
    answer_reply,
    describe_events,
    events_of_type,
    inline_agent,
    message_text,
    offered_tool,
    offered_tool_names,
    tool_call_reply,
)


class City(pydantic.BaseModel):
    name: str
    population: int


def test_run_session_plain_answer_completes(client: Any, scripted_model: ScriptedModel, tag: str) -> None:
    scripted_model.add_rule(tag, [answer_reply("42")])

    result = client.run_session(
        agent=inline_agent("sdk-plain"), messages=f"{tag} What is 6*7?", timeout_seconds=RUN_TIMEOUT_S
    )

    assert result.status == "completed", describe_events(result.events)
    assert result.answer == "42"
    assert result.outcome == "success"
    assert result.error is None and result.error_code is None
    assert result.events, "run_session returned no events"
    assert result.events[0].type == "RequestStartEvent", describe_events(result.events)
    answers = agent_events(result.events, "answer_event")
    assert [(a["answer"], a.get("outcome")) for a in answers] == [("42", "success")], describe_events(result.events)
    assert result.next_from_index == len(result.events)

    # The answer is mirrored on the session resource.
    session = client.session(result.id).get()
    assert session.id == result.id
    assert session.status.status == "completed"
    assert session.latest_answer == "42"

    # One model call, to the configured model, offering the built-in tools.
    requests = scripted_model.requests_for(tag)
    assert len(requests) == 1
    assert requests[0].get("model") == MAIN_MODEL_ID
    assert {"answer", "think"} <= set(offered_tool_names(requests[0]))


def test_run_session_answer_schema_retries_invalid_answer(
    client: Any, scripted_model: ScriptedModel, tag: str
) -> None:
    # The first answer lacks a required field; the server must send the validation error back to the
    # model, which then answers correctly.
    scripted_model.add_rule(
        tag,
        [answer_reply({"name": "Paris"}), answer_reply({"name": "Paris", "population": 2102650})],
    )

    result = client.run_session(
        agent=inline_agent("sdk-structured"),
        messages=f"{tag} Which city is the capital of France, and how many people live there?",
        answer_schema=City,
        timeout_seconds=RUN_TIMEOUT_S,
    )

    assert result.status == "completed", describe_events(result.events)
    assert isinstance(result.answer, City)
    assert result.answer == City(name="Paris", population=2102650)
    answers = agent_events(result.events, "answer_event")
    assert answers and answers[-1]["answer"] == {"name": "Paris", "population": 2102650}

    requests = scripted_model.requests_for(tag)
    assert len(requests) == 2, "expected one rejected answer and one accepted answer"
    # The answer tool's parameters carry the pydantic schema (sent as the agent's answer_format).
    answer_tool = offered_tool(requests[0], "answer")
    assert answer_tool is not None
    assert "population" in json.dumps(answer_tool.get("parameters"))
    # The rejection reached the model as a tool result naming the missing field.
    feedback = [message_text(m.get("content")) for m in requests[1]["messages"] if m.get("role") == "tool"]
    assert any("population" in text for text in feedback), f"no validation feedback in {feedback!r}"


def test_run_session_catalog_agent_with_answer_schema(
    catalog_client: Any, scripted_model: ScriptedModel, tag: str
) -> None:
    scripted_model.add_rule(tag, [answer_reply({"name": "Lyon", "population": 522250})])

    # A string agent: the SDK sends the schema as overrides["agent.answer_format"].
    result = catalog_client.run_session(
        agent=CATALOG_AGENT,
        messages=f"{tag} Which is the third most populous city of France?",
        answer_schema=City,
        timeout_seconds=RUN_TIMEOUT_S,
    )

    assert result.status == "completed", describe_events(result.events)
    assert result.answer == City(name="Lyon", population=522250)

    requests = scripted_model.requests_for(tag)
    assert len(requests) == 1
    # The catalog agent's model and instructions were used...
    assert requests[0].get("model") == CATALOG_MODEL_ID
    assert CATALOG_INSTRUCTIONS in json.dumps(requests[0]["messages"])
    # ...and the override reached the answer tool.
    answer_tool = offered_tool(requests[0], "answer")
    assert answer_tool is not None
    assert "population" in json.dumps(answer_tool.get("parameters"))

    # The session reads back (a resolved catalog agent must still parse in the SDK).
    session = catalog_client.session(result.id).get()
    agent = session.request.agent
    agent_name = agent if isinstance(agent, str) else agent.name
    assert agent_name.split(":")[0] == CATALOG_AGENT


def test_run_session_runs_client_tools(client: Any, scripted_model: ScriptedModel, tag: str) -> None:
    calls: List[str] = []

    def lookup_secret_number(label: str) -> int:
        """Return the secret number filed under a label."""
        calls.append(label)
        return 7919

    scripted_model.add_rule(
        tag,
        [
            tool_call_reply("lookup_secret_number", {"label": "alpha"}),
            answer_reply("The secret number is 7919."),
        ],
    )

    result = client.run_session(
        agent=inline_agent("sdk-tools"),
        messages=f"{tag} Look up the secret number for alpha.",
        tools=[lookup_secret_number],
        timeout_seconds=RUN_TIMEOUT_S,
    )

    assert calls == ["alpha"], "the SDK must run the tool exactly once"
    assert result.status == "completed", describe_events(result.events)
    assert result.answer == "The secret number is 7919."

    # The call was advertised through the log, and its result logged.
    awaiting = [d for d in events_of_type(result.events, "ActiveStateChangeEvent") if d.get("state") == "awaiting_tool_results"]
    assert awaiting, describe_events(result.events)
    pending = awaiting[0].get("pending_tool_calls") or []
    assert [(c.get("tool_name"), c.get("args")) for c in pending] == [("lookup_secret_number", {"label": "alpha"})]
    tool_results = [
        d for d in agent_events(result.events, "tool_result")
        if (d.get("tool_req") or {}).get("tool_name") == "lookup_secret_number"
    ]
    assert [d.get("result") for d in tool_results] == [7919], describe_events(result.events)

    # The model was offered the tool, and saw its value before answering.
    requests = scripted_model.requests_for(tag)
    assert len(requests) == 2
    assert "lookup_secret_number" in offered_tool_names(requests[0])
    tool_messages = [message_text(m.get("content")) for m in requests[1]["messages"] if m.get("role") == "tool"]
    assert any("7919" in text for text in tool_messages), f"tool value missing from {tool_messages!r}"
