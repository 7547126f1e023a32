"""Fixtures for the SDK acceptance tests: real `agentd` servers driven by a scripted model.

One `scripted-model` process and one main `agentd` server serve the whole run;
each test scripts the model with rules keyed by its own unique tag, which it
puts in its task text. Extra servers (a config-file catalog, an unreachable
model, a browser allowed to reach 127.0.0.1) are started on first use and live
until the end of the run.

When a test fails, the output every server wrote during that test is attached
to the failure report.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional

import pytest

import harness
from harness import AgentdServer, HarnessError, ScriptedModel

# The model id the main server sends upstream; tests check it reaches the model.
MAIN_MODEL_ID = "scripted-sdk-model"
# A second organisation on the main server, for visibility checks.
OTHER_ORG = "sdk-other-org"

# The catalog agent served from the config file of `catalog_agentd`.
CATALOG_AGENT = "sdk-city-finder"
CATALOG_INSTRUCTIONS = "Reply with the city the user asks about, using the answer tool. (sdk catalog instructions)"
CATALOG_MODEL_NAME = "scripted"
CATALOG_MODEL_ID = "scripted-catalog-model"

# The model id of the server whose model is unreachable.
UNREACHABLE_MODEL_ID = "sdk-unreachable-model"
# The name the server gives the model configured by AGENTD_MODEL_BASE_URL.
ENV_MODEL_NAME = "default"


def _harness_call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a harness step, turning a setup problem into a loud failure (never a skip)."""
    try:
        return fn(*args, **kwargs)
    except HarnessError as err:
        problem = str(err)
    # Failing outside the except block keeps the report to the one message that matters.
    pytest.fail(problem, pytrace=False)


# ---------------------------------------------------------------------------
# Binaries and shared processes
# ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def agentd_bin() -> Path:
    return _harness_call(harness.locate_binary, "AGENTD_BIN", "agentd")


@pytest.fixture(scope="session")
def scripted_model_bin() -> Path:
    return _harness_call(harness.locate_binary, "SCRIPTED_MODEL_BIN", "scripted-model")


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sdk-logs")


@pytest.fixture(scope="session")
def scripted_model(scripted_model_bin: Path, log_dir: Path) -> Iterator[ScriptedModel]:
    model = _harness_call(harness.start_scripted_model, scripted_model_bin, log_dir)
    yield model
    model.process.stop()


def model_env(model_base_url: str, model_id: str) -> Dict[str, str]:
    """Server environment pointing the default model at `model_base_url`.

    Retries are few and short so that a failing model fails a session quickly.
    """
    return {
        "AGENTD_MODEL_BASE_URL": model_base_url,
        "AGENTD_MODEL": model_id,
        "AGENTD_MODEL_API_KEY": "sdk-test-model-key",
        "AGENTD_MODEL_MAX_RETRIES": "1",
        "AGENTD_MODEL_RETRY_BASE_MS": "50",
        "AGENTD_MODEL_TIMEOUT_S": "30",
        "AGENTD_MAX_CONCURRENT_SESSIONS": "50",
    }


StartServer = Callable[..., AgentdServer]


@pytest.fixture(scope="session")
def start_server(
    agentd_bin: Path, log_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StartServer]:
    """A factory for `agentd serve` processes; every server it starts is stopped at the end of the run.

    `start_server(name, env=..., config_text=None, orgs=("sdk-tests",))` creates a fresh data
    directory, one API key per organisation, writes `config_text` (TOML) to a file passed with
    `--config` when given, and waits until the server answers `/healthz`.
    """
    servers: List[AgentdServer] = []

    def start(
        name: str,
        *,
        env: Mapping[str, str],
        config_text: Optional[str] = None,
        orgs: "tuple[str, ...]" = ("sdk-tests",),
    ) -> AgentdServer:
        data_dir = tmp_path_factory.mktemp(f"{name}-data")
        config_file = None
        if config_text is not None:
            config_file = data_dir.parent / f"{name}-config.toml"
            config_file.write_text(config_text)
        server = _harness_call(
            harness.start_agentd,
            agentd_bin,
            name=name,
            data_dir=data_dir,
            log_dir=log_dir,
            env=env,
            orgs=orgs,
            config_file=config_file,
        )
        servers.append(server)
        return server

    yield start

    not_stopped = []
    for server in servers:
        server.stop()
        if server.process.stopped_by_kill:
            not_stopped.append(server.process.name)
    if not_stopped:
        pytest.fail(
            f"{', '.join(not_stopped)} did not exit within {harness.SHUTDOWN_DEADLINE_S:.0f} s of SIGTERM "
            "and had to be killed",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def agentd(start_server: StartServer, scripted_model: ScriptedModel) -> AgentdServer:
    """The main server: configured by environment only, default model = the scripted model."""
    return start_server("agentd", env=model_env(scripted_model.url, MAIN_MODEL_ID), orgs=("sdk-tests", OTHER_ORG))


@pytest.fixture(scope="session")
def catalog_agentd(start_server: StartServer, scripted_model: ScriptedModel) -> AgentdServer:
    """A server configured by a config file: a named model and a small agent catalog."""
    toml = harness.toml_string
    config = f"""\
max_concurrent_sessions = 50

[models.{CATALOG_MODEL_NAME}]
base_url = {toml(scripted_model.url)}
model = {toml(CATALOG_MODEL_ID)}
api_key = "sdk-test-catalog-key"
vision = false
timeout_s = 30
max_retries = 1
retry_base_ms = 50

[[agents]]
name = {toml(CATALOG_AGENT)}
description = "Finds a city; used by the SDK acceptance tests."
environments = []
instructions = {toml(CATALOG_INSTRUCTIONS)}
model = {toml(CATALOG_MODEL_NAME)}
"""
    return start_server(
        "agentd-catalog", env=model_env(scripted_model.url, MAIN_MODEL_ID), config_text=config
    )


@pytest.fixture(scope="session")
def unreachable_model_url() -> str:
    """An OpenAI base URL on a loopback port nobody listens on."""
    return f"http://127.0.0.1:{harness.closed_loopback_port()}/v1"


@pytest.fixture(scope="session")
def unreachable_agentd(start_server: StartServer, unreachable_model_url: str) -> AgentdServer:
    """A server whose default model cannot be reached."""
    return start_server("agentd-unreachable-model", env=model_env(unreachable_model_url, UNREACHABLE_MODEL_ID))


@pytest.fixture(scope="session")
def web_agentd(start_server: StartServer, scripted_model: ScriptedModel) -> AgentdServer:
    """A server whose browser may reach 127.0.0.1, where web tests serve their pages.

    The main server keeps the default policy (no loopback for the browser); only this
    one opens the exception, as an operator would for an internal site.
    """
    env = {**model_env(scripted_model.url, MAIN_MODEL_ID), "AGENTD_BROWSER_ALLOW_HOSTS": "127.0.0.1"}
    return start_server("agentd-web", env=env)


# ---------------------------------------------------------------------------
# Per-test helpers
# ---------------------------------------------------------------------------


@pytest.fixture
def tag(request: pytest.FixtureRequest) -> str:
    """A string unique to this test, put in its task text so its model script applies only to it."""
    name = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")
    return f"[{name}-{uuid.uuid4().hex[:8]}]"


@pytest.fixture
def client(agentd: AgentdServer) -> Iterator[Any]:
    """A `hai_agents.Client` on the main server."""
    sdk_client = agentd.client()
    yield sdk_client
    sdk_client.close()


@pytest.fixture
def catalog_client(catalog_agentd: AgentdServer) -> Iterator[Any]:
    sdk_client = catalog_agentd.client()
    yield sdk_client
    sdk_client.close()


@pytest.fixture
def web_client(web_agentd: AgentdServer) -> Iterator[Any]:
    sdk_client = web_agentd.client()
    yield sdk_client
    sdk_client.close()


@pytest.fixture
def unreachable_client(unreachable_agentd: AgentdServer) -> Iterator[Any]:
    sdk_client = unreachable_agentd.client()
    yield sdk_client
    sdk_client.close()


# ---------------------------------------------------------------------------
# Server output on failure
# ---------------------------------------------------------------------------

_LOG_OFFSETS_KEY = pytest.StashKey[Dict[str, int]]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Remember where each log stood so a failure shows only what this test caused
    # (servers started during this test's setup show from their first line).
    item.stash[_LOG_OFFSETS_KEY] = {str(p.log_path): p.log_size() for p in harness.live_processes()}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    offsets = item.stash.get(_LOG_OFFSETS_KEY, {})
    for process in harness.live_processes():
        offset = offsets.get(str(process.log_path), 0)
        report.sections.append(
            (f"{process.name} output during this test ({process.log_path})", process.read_log(offset))
        )
