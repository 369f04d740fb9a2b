"""The driver contract suite: every driver, the emulator on 127.0.0.1 port 0, every §A9 fault.

Drivers are plugged in through *adapter modules* next to this file, discovered by name:
``adapter_sync.py`` (the blocking driver) and ``adapter_async.py`` (the asyncio driver; its
parametrisation is skipped while the module does not exist). Adding a driver never needs an edit
here or in the tests. Each adapter module exposes::

    NAME: str                                   # the test id, e.g. "sync" / "async"

    def follow_job(settings: ConnectionSettings, rest: InsightRestClient,
                   job_request: Mapping[str, Any], payload: bytes | None, *,
                   config: FollowerConfig, on_line: Callable[[str], None],
                   timeout_seconds: float) -> JobOutcome
        # open the socket, submit the job with its connection-id, follow it to its end;
        # call on_line(text) for every forwarded run-log line, in order; blocking call
        # (an async adapter wraps its coroutine in asyncio.run); raise TimeoutError after
        # timeout_seconds; let InsightError subclasses (e.g. SubmitRejected) propagate.

    def reattach(settings: ConnectionSettings, rest: InsightRestClient, job_id: str, *,
                 execution_attempts: int, last_run_log_line: int,
                 config: FollowerConfig, on_line: Callable[[str], None],
                 timeout_seconds: float) -> JobOutcome
        # follow a job that was submitted earlier (no submit), resuming after
        # last_run_log_line: only later lines reach on_line.

``rest`` is made by the test (fast retry policy) and closed by it; the adapter must not close it.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from types import ModuleType

import pytest

from airflow_insight.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Emulator, EmulatorConfig
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport.rest import InsightRestClient
from airflow_insight.transport.retry import RetryPolicy

ADAPTER_MODULES = ("adapter_sync", "adapter_async")


def _adapter_params() -> list[object]:
    params: list[object] = []
    for name in ADAPTER_MODULES:
        try:
            module = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{name}":
                raise  # the adapter exists but is broken: fail loudly
            params.append(
                pytest.param(None, id=name, marks=pytest.mark.skip(reason=f"{name} not written"))
            )
            continue
        params.append(pytest.param(module, id=getattr(module, "NAME", name)))
    return params


@pytest.fixture(params=_adapter_params())
def driver(request: pytest.FixtureRequest) -> ModuleType:
    """One driver adapter module (see the module docstring)."""
    module: ModuleType = request.param
    return module


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """Tiny intervals; tests replace fields with dataclasses.replace via ``make_emulator``."""
    return EmulatorConfig(ping_interval_seconds=0.1, pong_timeout_seconds=2.0)


@pytest.fixture
def emulator(emulator_config: EmulatorConfig) -> Iterator[Emulator]:
    """The emulator on 127.0.0.1, any free port."""
    with Emulator(emulator_config) as running:
        yield running


@pytest.fixture
def settings(emulator: Emulator) -> ConnectionSettings:
    """Connection settings for the emulator with the demo credentials."""
    return ConnectionSettings(
        base_url=emulator.base_url,
        client_id=DEMO_CLIENT_ID,
        client_secret=DEMO_CLIENT_SECRET,
        connect_timeout_seconds=2.0,
        read_timeout_seconds=5.0,
    )


@pytest.fixture
def rest(settings: ConnectionSettings) -> Iterator[InsightRestClient]:
    """A REST client with a fast retry policy."""
    policy = RetryPolicy(max_attempts=5, base_delay_seconds=0.01, max_delay_seconds=0.1)
    with InsightRestClient(settings, retry_policy=policy) as client:
        yield client
