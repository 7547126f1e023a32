"""Process and protocol plumbing for the SDK acceptance tests.

This module owns everything the tests need besides the SDK itself: finding the
binaries, running `agentd` and `scripted-model` as child processes (with their
output captured to log files), talking to the scripted model's control
endpoints, and waiting on conditions with deadlines. The pytest fixtures in
`conftest.py` are thin wrappers around it.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, TypeVar

REPO_ROOT = Path(__file__).resolve().parents[2]

# How long a child process may take to print its "listening" line. Generous on
# purpose: a debug build on a loaded 2-core machine can start slowly.
STARTUP_DEADLINE_S = 30.0
# How long a child gets to exit after SIGTERM before it is killed.
SHUTDOWN_DEADLINE_S = 10.0
# Pause between two checks of a polled condition; short, so controls that must
# act "within 1 s" are measured with a useful resolution.
POLL_INTERVAL_S = 0.02

T = TypeVar("T")

# Terminal colour codes, stripped from logs shown in reports.
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class HarnessError(RuntimeError):
    """The test environment itself could not be set up (not a product failure)."""


# ---------------------------------------------------------------------------
# Binaries
# ---------------------------------------------------------------------------


def default_binary_dir() -> Path:
    """`<target>/debug`, honouring CARGO_TARGET_DIR like cargo does."""
    target = os.environ.get("CARGO_TARGET_DIR")
    target_dir = Path(target) if target else REPO_ROOT / "target"
    if not target_dir.is_absolute():
        target_dir = REPO_ROOT / target_dir
    return target_dir / "debug"


def locate_binary(env_var: str, name: str) -> Path:
    """The path of a project binary: `$env_var` if set, else the cargo debug build.

    Raises HarnessError with instructions when it is missing, so a run without
    binaries fails loudly instead of skipping the acceptance suite.
    """
    override = os.environ.get(env_var)
    path = Path(override) if override else default_binary_dir() / name
    if not path.is_file() or not os.access(path, os.X_OK):
        how = f"${env_var}={override}" if override else f"the default location (set ${env_var} to override)"
        raise HarnessError(
            f"The `{name}` binary was not found at {path} ({how}). "
            "Build it first with `cargo build --bins` from the repository root, "
            "or run the whole suite with `bash scripts/test`."
        )
    return path


# ---------------------------------------------------------------------------
# Child processes
# ---------------------------------------------------------------------------

_live_processes: "set[ServiceProcess]" = set()
_live_lock = threading.Lock()


def live_processes() -> "list[ServiceProcess]":
    """The children started by this run that have not been stopped yet."""
    with _live_lock:
        return list(_live_processes)


def _stop_leftovers() -> None:
    """Last line of defence: no child survives the test run, even on an abrupt exit."""
    for proc in live_processes():
        proc.stop()


atexit.register(_stop_leftovers)


class ServiceProcess:
    """A long-running child process whose stdout and stderr go to one log file.

    The child runs in its own process group so that anything it spawns is
    stopped with it. Stdout is read line by line by a background thread which
    copies it into the log and watches for `ready_pattern`.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        ready_pattern: str,
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[Path] = None,
    ) -> None:
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self._ready_re = re.compile(ready_pattern)
        self._ready = threading.Event()
        self._match: Optional[re.Match[str]] = None
        self.stopped_by_kill = False

        log_path.parent.mkdir(parents=True, exist_ok=True)
        # Both handles append, so the reader thread's writes and the child's
        # stderr interleave safely in the same file.
        self._log = open(log_path, "ab", buffering=0)
        self._log.write(f"$ {' '.join(self.argv)}\n".encode())
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=dict(env) if env is not None else None,
            cwd=str(cwd) if cwd else None,
            start_new_session=True,
        )
        with _live_lock:
            _live_processes.add(self)
        self._reader = threading.Thread(target=self._pump_stdout, name=f"{name}-stdout", daemon=True)
        self._reader.start()

    def _pump_stdout(self) -> None:
        assert self.proc.stdout is not None
        with open(self.log_path, "ab", buffering=0) as log:
            for raw in iter(self.proc.stdout.readline, b""):
                log.write(raw)
                if not self._ready.is_set():
                    match = self._ready_re.search(raw.decode("utf-8", "replace"))
                    if match:
                        self._match = match
                        self._ready.set()
        self.proc.stdout.close()

    def wait_ready(self, deadline_s: float = STARTUP_DEADLINE_S) -> re.Match[str]:
        """Block until the ready line appears; fail with the log if the child dies or stalls."""
        end = time.monotonic() + deadline_s
        while not self._ready.wait(timeout=0.05):
            if self.proc.poll() is not None:
                # The exit may race the last line of output; give the reader a moment to flush it.
                self._reader.join(timeout=1.0)
                if self._ready.is_set():
                    break
                raise HarnessError(
                    f"{self.name} exited with status {self.proc.returncode} before it was ready.\n"
                    f"{self.describe_log()}"
                )
            if time.monotonic() > end:
                raise HarnessError(
                    f"{self.name} printed no line matching {self._ready_re.pattern!r} within {deadline_s:.0f} s.\n"
                    f"{self.describe_log()}"
                )
        assert self._match is not None
        return self._match

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self, deadline_s: float = SHUTDOWN_DEADLINE_S) -> Optional[int]:
        """SIGTERM, wait up to `deadline_s`, then SIGKILL the whole process group.

        Returns the exit status. Sets `stopped_by_kill` when SIGTERM was not enough.
        """
        try:
            if self.proc.poll() is None:
                try:
                    self.proc.send_signal(signal.SIGTERM)
                    self.proc.wait(timeout=deadline_s)
                except subprocess.TimeoutExpired:
                    self.stopped_by_kill = True
                    self._kill_group()
                    self.proc.wait(timeout=deadline_s)
            # Whatever the child started and left behind goes too.
            self._kill_group()
            self._reader.join(timeout=2.0)
            return self.proc.returncode
        finally:
            self._log.close()
            with _live_lock:
                _live_processes.discard(self)

    def _kill_group(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def read_log(self, offset: int = 0, max_bytes: int = 32_000) -> str:
        """The log from `offset` on, keeping only the last `max_bytes` of it."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(0, os.SEEK_END)
                end = log.tell()
                start = max(offset, end - max_bytes)
                log.seek(start)
                text = log.read().decode("utf-8", "replace")
        except OSError as err:
            return f"(could not read {self.log_path}: {err})"
        text = _ANSI_ESCAPE.sub("", text)
        if start > offset:
            text = f"[... {start - offset} earlier bytes cut; full log at {self.log_path} ...]\n" + text
        return text

    def describe_log(self, offset: int = 0) -> str:
        return f"--- {self.name} log ({self.log_path}) ---\n{self.read_log(offset)}--- end of {self.name} log ---"


# ---------------------------------------------------------------------------
# HTTP helpers (plain urllib: the harness must not depend on the SDK under test)
# ---------------------------------------------------------------------------


def http_request(
    method: str, url: str, body: Any = None, *, timeout: float = 10.0, headers: Optional[Dict[str, str]] = None
) -> "tuple[int, bytes]":
    """One HTTP exchange; returns (status, body) for any status instead of raising on 4xx/5xx."""
    data = None
    all_headers = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        all_headers.setdefault("content-type", "application/json")
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def wait_for_http_ok(url: str, deadline_s: float = STARTUP_DEADLINE_S, process: Optional[ServiceProcess] = None) -> None:
    """Poll `url` until it answers 200."""
    end = time.monotonic() + deadline_s
    last: str = "no attempt"
    while time.monotonic() < end:
        if process is not None and not process.running():
            raise HarnessError(f"{process.name} exited while waiting for {url}.\n{process.describe_log()}")
        try:
            status, _ = http_request("GET", url, timeout=2.0)
            if status == 200:
                return
            last = f"status {status}"
        except (urllib.error.URLError, OSError) as err:
            last = str(err)
        time.sleep(POLL_INTERVAL_S * 5)
    detail = f"\n{process.describe_log()}" if process is not None else ""
    raise HarnessError(f"{url} did not answer 200 within {deadline_s:.0f} s (last: {last}).{detail}")


def closed_loopback_port() -> int:
    """A loopback port that was just bound and released, so nothing listens on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------
# Waiting on conditions
# ---------------------------------------------------------------------------


def wait_until(
    condition: Callable[[], Optional[T]],
    *,
    timeout: float,
    interval: float = POLL_INTERVAL_S,
    message: "str | Callable[[], str]" = "condition not met",
) -> T:
    """Call `condition` until it returns a truthy value, and return that value.

    Raises AssertionError with `message` when `timeout` seconds pass first.
    """
    end = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= end:
            text = message() if callable(message) else message
            raise AssertionError(f"after {timeout:.2f} s: {text}")
        time.sleep(interval)


# ---------------------------------------------------------------------------
# The scripted model
# ---------------------------------------------------------------------------

LISTENING_MODEL_RE = r"listening on (http://127\.0\.0\.1:\d+/v1)\b"
LISTENING_AGENTD_RE = r"agentd listening on (http://127\.0\.0\.1:\d+)\b"

# What the scripted model says to a request no test scripted: a plain answer
# that makes a stray session end visibly instead of looping.
UNSCRIPTED_REPLY = {
    "tool_calls": [
        {"name": "answer", "arguments": {"answer": "no scripted rule matched this task", "outcome": "blocked"}}
    ]
}


def answer_reply(answer: Any, outcome: str = "success", **extra: Any) -> Dict[str, Any]:
    """A scripted reply that calls the built-in `answer` tool."""
    return {"tool_calls": [{"name": "answer", "arguments": {"answer": answer, "outcome": outcome}}], **extra}


def think_reply(thought: str, **extra: Any) -> Dict[str, Any]:
    """A scripted reply that calls the built-in `think` tool."""
    return {"tool_calls": [{"name": "think", "arguments": {"thought": thought}}], **extra}


def tool_call_reply(name: str, arguments: Dict[str, Any], **extra: Any) -> Dict[str, Any]:
    return {"tool_calls": [{"name": name, "arguments": arguments}], **extra}


def message_text(content: Any) -> str:
    """The text of an OpenAI chat message `content` (a string or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "\n".join(parts)
    return ""


def first_user_text(chat_request: Mapping[str, Any]) -> str:
    for message in chat_request.get("messages") or []:
        if isinstance(message, dict) and message.get("role") == "user":
            return message_text(message.get("content"))
    return ""


def offered_tool_names(chat_request: Mapping[str, Any]) -> List[str]:
    names = []
    for tool in chat_request.get("tools") or []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            names.append(function["name"])
    return names


def offered_tool(chat_request: Mapping[str, Any], name: str) -> Optional[Dict[str, Any]]:
    for tool in chat_request.get("tools") or []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(function, dict) and function.get("name") == name:
            return function
    return None


def _as_chat_request(item: Any) -> Optional[Dict[str, Any]]:
    """One entry of `GET /_requests` as the chat-completions request body it records."""
    if isinstance(item, str):
        try:
            item = json.loads(item)
        except ValueError:
            return None
    if not isinstance(item, dict):
        return None
    if "messages" in item:
        return item
    body = item.get("body")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return None
    return body if isinstance(body, dict) and "messages" in body else None


@dataclass
class ScriptedModel:
    """Client for the scripted model's control endpoints.

    Tests share one scripted model. Each test adds rules keyed by a unique tag
    that it puts in its task text; the union of all rules so far is sent on
    every change, so a session left over from an earlier test keeps its script.
    """

    process: ServiceProcess
    url: str  # the OpenAI base URL, ending in /v1
    rules: List[Dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def root(self) -> str:
        return self.url[: -len("/v1")] if self.url.endswith("/v1") else self.url

    def add_rule(self, match: str, replies: Sequence[Dict[str, Any]]) -> None:
        """Answer every request whose first user message contains `match` with `replies[k]`."""
        if not replies:
            raise ValueError("a rule needs at least one reply")
        with self._lock:
            self.rules = [r for r in self.rules if r["match"] != match]
            self.rules.append({"match": match, "replies": list(replies)})
            self._put_script()

    def _put_script(self) -> None:
        script = {"rules": self.rules, "default": [UNSCRIPTED_REPLY]}
        status, body = http_request("PUT", f"{self.root}/_script", script)
        if not 200 <= status < 300:
            raise HarnessError(f"PUT /_script answered {status}: {body[:500]!r}")

    def reset(self) -> None:
        with self._lock:
            self.rules = []
            self._put_script()

    def requests(self) -> List[Dict[str, Any]]:
        """Every chat-completions request received so far, oldest first."""
        status, body = http_request("GET", f"{self.root}/_requests")
        if status != 200:
            raise HarnessError(f"GET /_requests answered {status}: {body[:500]!r}")
        data = json.loads(body or b"[]")
        if isinstance(data, dict):
            data = data.get("requests", [])
        return [req for req in (_as_chat_request(item) for item in data) if req is not None]

    def requests_for(self, tag: str) -> List[Dict[str, Any]]:
        """The requests of the sessions whose first user message contains `tag`."""
        return [req for req in self.requests() if tag in first_user_text(req)]

    def wait_for_requests(self, tag: str, count: int, timeout: float = 15.0) -> List[Dict[str, Any]]:
        """Wait until at least `count` requests carrying `tag` have arrived."""

        def enough() -> Optional[List[Dict[str, Any]]]:
            received = self.requests_for(tag)
            return received if len(received) >= count else None

        return wait_until(
            enough,
            timeout=timeout,
            message=lambda: f"the scripted model received {len(self.requests_for(tag))} request(s) for "
            f"{tag!r}, expected at least {count}",
        )


def start_scripted_model(binary: Path, log_dir: Path) -> ScriptedModel:
    process = ServiceProcess(
        "scripted-model",
        [binary, "--port", "0"],
        log_path=log_dir / "scripted-model.log",
        ready_pattern=LISTENING_MODEL_RE,
        env=child_env(),
    )
    try:
        url = process.wait_ready().group(1)
        model = ScriptedModel(process=process, url=url)
        model.reset()
    except BaseException:
        process.stop()
        raise
    return model


# ---------------------------------------------------------------------------
# agentd
# ---------------------------------------------------------------------------


def child_env(extra: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """The environment for a child: ours, minus agentd settings that would leak into the test, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTD_")}
    env.setdefault("RUST_LOG", "info")
    env.setdefault("NO_COLOR", "1")  # logs are read as plain text
    env.setdefault("RUST_BACKTRACE", "1")
    env.update(extra or {})
    return env


def create_api_key(binary: Path, data_dir: Path, org: str, log_dir: Path) -> str:
    """`agentd keys create`; the key is the last line of its stdout."""
    argv = [str(binary), "keys", "create", "--org", org, "--data-dir", str(data_dir)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=child_env())
    except subprocess.TimeoutExpired as err:
        raise HarnessError(f"`{' '.join(argv)}` did not finish within 60 s") from err
    with open(log_dir / f"keys-create-{org}.log", "w") as log:
        log.write(f"$ {' '.join(argv)}\n[exit {done.returncode}]\n--- stdout ---\n{done.stdout}--- stderr ---\n{done.stderr}")
    lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not lines:
        raise HarnessError(
            f"`{' '.join(argv)}` failed (exit {done.returncode}).\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        )
    return lines[-1]


@dataclass
class AgentdServer:
    """A running `agentd serve` with its data directory and API keys (one per organisation)."""

    process: ServiceProcess
    base_url: str
    data_dir: Path
    api_keys: Dict[str, str]
    main_org: str

    @property
    def api_key(self) -> str:
        return self.api_keys[self.main_org]

    def client(self, org: Optional[str] = None, **kwargs: Any) -> Any:
        """A `hai_agents.Client` for this server, authenticated as `org` (default: the main one)."""
        from hai_agents import Client

        key = self.api_keys[org or self.main_org]
        kwargs.setdefault("timeout", 60.0)
        return Client(base_url=self.base_url, api_key=key, **kwargs)

    def stop(self) -> None:
        self.process.stop()


def start_agentd(
    binary: Path,
    *,
    name: str,
    data_dir: Path,
    log_dir: Path,
    env: Mapping[str, str],
    orgs: Iterable[str] = ("sdk-tests",),
    config_file: Optional[Path] = None,
) -> AgentdServer:
    """Create keys in a fresh data dir, start `agentd serve` on an ephemeral port and wait for /healthz."""
    data_dir.mkdir(parents=True, exist_ok=True)
    orgs = list(orgs)
    keys = {org: create_api_key(binary, data_dir, org, log_dir) for org in orgs}
    argv: List[Any] = [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir]
    if config_file is not None:
        argv += ["--config", config_file]
    process = ServiceProcess(
        name,
        argv,
        log_path=log_dir / f"{name}.log",
        ready_pattern=LISTENING_AGENTD_RE,
        env=child_env(env),
    )
    try:
        base_url = process.wait_ready().group(1)
        wait_for_http_ok(f"{base_url}/healthz", process=process)
    except BaseException:
        process.stop()
        raise
    return AgentdServer(process=process, base_url=base_url, data_dir=data_dir, api_keys=keys, main_org=orgs[0])


def toml_string(value: str) -> str:
    """A TOML basic string; JSON string escapes are valid TOML escapes for these values."""
    return json.dumps(value)


# ---------------------------------------------------------------------------
# Reading SDK results
# ---------------------------------------------------------------------------


def event_dicts(events: Iterable[Any]) -> List[Dict[str, Any]]:
    """SDK events (typed or the untyped fallback) as plain `{"type", "timestamp", "data"}` dicts."""
    out = []
    for event in events:
        if hasattr(event, "model_dump"):
            out.append(event.model_dump(mode="json"))
        elif isinstance(event, dict):
            out.append(event)
        else:
            out.append({"type": getattr(event, "type", None), "data": getattr(event, "data", None)})
    return out


def agent_events(events: Iterable[Any], kind: str) -> List[Dict[str, Any]]:
    """The `data` of every `AgentEvent` of the given `kind` (e.g. `answer_event`), in log order."""
    return [
        e["data"]
        for e in event_dicts(events)
        if e.get("type") == "AgentEvent" and isinstance(e.get("data"), dict) and e["data"].get("kind") == kind
    ]


def events_of_type(events: Iterable[Any], event_type: str) -> List[Dict[str, Any]]:
    """The `data` of every event of the given envelope `type`, in log order."""
    return [e.get("data") or {} for e in event_dicts(events) if e.get("type") == event_type]


def describe_events(events: Iterable[Any]) -> str:
    """A compact one-line-per-event listing for assertion messages."""
    lines = []
    for index, e in enumerate(event_dicts(events)):
        data = e.get("data")
        kind = data.get("kind") if isinstance(data, dict) else None
        lines.append(f"  [{index}] {e.get('type')}{f' ({kind})' if kind else ''}: {json.dumps(data)[:200]}")
    return "\n".join(lines) or "  (no events)"


# ---------------------------------------------------------------------------
# Shared test vocabulary
# ---------------------------------------------------------------------------

# Wall-clock budget handed to the SDK's own waits, so a stuck server fails a
# test instead of hanging the run.
RUN_TIMEOUT_S = 30.0
# How long a scripted reply holds a model call in flight when a test needs to
# act on a session mid-call. Well above CONTROL_DEADLINE_S, so a control that
# only acted once the call returned is caught.
HOLD_MS = 2500
# Pause and cancel must take effect within this long, even mid model call.
CONTROL_DEADLINE_S = 1.0


def inline_agent(name: str, **fields: Any) -> Dict[str, Any]:
    """An inline agent with no environment, as the SDK sends it."""
    return {"name": name, "description": f"{name}: an agent of the SDK acceptance tests.", "environments": [], **fields}
