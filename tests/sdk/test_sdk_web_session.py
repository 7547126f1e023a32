"""`Client.run_session` on a web agent: the server drives a real headless Chromium on a page served by the test.

The page is served from this process on 127.0.0.1 (which `web_agentd` lets its browser
reach); its server records what the browser asked for, so a click is checked by its
effect on the page rather than by what the server says it did.
"""

from __future__ import annotations

import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator, List, Tuple

import pytest
from hai_agents import Agent, AgentEventData_ObservationEvent, Environment_Web

from harness import (
    AgentdServer,
    ScriptedModel,
    answer_reply,
    describe_events,
    http_request,
    offered_tool_names,
    tool_call_reply,
)

PAGE_TITLE = "SDK web test"
# The button's box in CSS pixels of the viewport: left, top, width, height.
BUTTON_BOX = (100, 100, 200, 60)
BUTTON_CENTER = (BUTTON_BOX[0] + BUTTON_BOX[2] // 2, BUTTON_BOX[1] + BUTTON_BOX[3] // 2)  # (200, 130)

PAGE_HTML = f"""<!doctype html>
<html>
<head><meta charset="utf-8"><title>{PAGE_TITLE}</title></head>
<body style="margin: 0">
<button id="go" style="position: absolute; left: {BUTTON_BOX[0]}px; top: {BUTTON_BOX[1]}px;
  width: {BUTTON_BOX[2]}px; height: {BUTTON_BOX[3]}px; margin: 0; padding: 0"
  onclick="fetch('/clicked', {{method: 'POST'}})">Click me</button>
</body>
</html>
"""

# The SDK's budget for the whole session. Longer than RUN_TIMEOUT_S: the server starts
# Chromium on the first web session, which a debug build on a loaded 2-core machine can
# take well over 10 s to do, and each step takes a screenshot.
WEB_RUN_TIMEOUT_S = 90.0
# How long the page's server may wait for the browser's POST once the session is over.
CLICK_DEADLINE_S = 10.0


class LocalPage:
    """A one-page site on 127.0.0.1: `GET /` is the page, `POST /clicked` is what its button sends."""

    def __init__(self) -> None:
        self.requests: List[Tuple[str, str]] = []
        self.clicked = threading.Event()
        page = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                page.requests.append(("GET", self.path))
                if urllib.parse.urlsplit(self.path).path == "/":
                    self._reply(200, PAGE_HTML.encode(), "text/html; charset=utf-8")
                else:
                    self._reply(404, b"not found", "text/plain")

            def do_POST(self) -> None:  # noqa: N802
                page.requests.append(("POST", self.path))
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                if self.path == "/clicked":
                    page.clicked.set()
                    self._reply(204, b"", None)
                else:
                    self._reply(404, b"not found", "text/plain")

            def _reply(self, status: int, body: bytes, content_type: "str | None") -> None:
                self.send_response(status)
                if content_type:
                    self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.send_header("cache-control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # requests are recorded in `page.requests`

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}/"
        self._thread = threading.Thread(target=self._server.serve_forever, name="sdk-test-page", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5.0)


@pytest.fixture
def local_page() -> Iterator[LocalPage]:
    page = LocalPage()
    yield page
    page.close()


def observations(events: Any) -> List[AgentEventData_ObservationEvent]:
    """The observation events of a session, as the SDK typed them."""
    return [
        e.data
        for e in events
        if getattr(e, "type", None) == "AgentEvent" and isinstance(getattr(e, "data", None), AgentEventData_ObservationEvent)
    ]


def test_run_session_clicks_a_button_in_a_real_browser(
    web_client: Any, web_agentd: AgentdServer, scripted_model: ScriptedModel, local_page: LocalPage, tag: str
) -> None:
    x, y = BUTTON_CENTER
    scripted_model.add_rule(
        tag, [tool_call_reply("click_web", {"x": x, "y": y}), answer_reply("clicked", "success")]
    )
    agent = Agent(
        name="sdk-web",
        description="sdk-web: a browser agent of the SDK acceptance tests.",
        environments=[Environment_Web(id="web", start_url=local_page.url)],
    )

    result = web_client.run_session(
        agent=agent, messages=f"{tag} Click the button on the page.", timeout_seconds=WEB_RUN_TIMEOUT_S
    )

    assert result.status == "completed", describe_events(result.events)
    assert result.answer == "clicked"
    assert result.outcome == "success"

    # The click reached the page: its handler's POST arrived at the page's server.
    assert local_page.clicked.wait(timeout=CLICK_DEADLINE_S), (
        f"the page's server never received POST /clicked within {CLICK_DEADLINE_S:.0f} s; "
        f"it saw {local_page.requests!r}\n{describe_events(result.events)}"
    )
    assert ("GET", "/") in local_page.requests

    # Two model calls (the click, then the answer), the first offered the browser's tools.
    requests = scripted_model.requests_for(tag)
    assert len(requests) == 2, f"expected the click and the answer, got {len(requests)} model call(s)"
    assert "click_web" in offered_tool_names(requests[0])

    # The events, read through the SDK both ways (the run's changes and the paginated history),
    # carry observations whose screenshots are absolute URLs on this server, serving JPEGs.
    page = web_client.sessions.list_session_events(result.id, size=100)
    assert page.total == len(page.items), f"expected one page of events, got {len(page.items)} of {page.total}"
    for events in (result.events, page.items):
        seen = observations(events)
        assert len(seen) >= 2, f"expected an observation before each step:\n{describe_events(events)}"
        for observation in seen:
            assert observation.type == "web", observation
            assert (observation.metadata or {}).get("title") == PAGE_TITLE, observation
            image = observation.image
            assert image is not None and image.type == "url", observation
            url = urllib.parse.urlsplit(image.source)
            assert url.scheme in ("http", "https") and url.netloc, f"not an absolute URL: {image.source!r}"
            assert image.source.startswith(f"{web_agentd.base_url}/"), (
                f"{image.source!r} is not on this server ({web_agentd.base_url})"
            )
            status, body = http_request(
                "GET", image.source, headers={"Authorization": f"Bearer {web_agentd.api_key}"}
            )
            assert status == 200, f"GET {image.source} answered {status}: {body[:300]!r}"
            assert body[:2] == b"\xff\xd8", f"GET {image.source} is not a JPEG: {body[:16]!r}"
