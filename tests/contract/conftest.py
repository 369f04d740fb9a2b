"""The driver contract suite: every driver, the emulator on 127.0.0.1 port 0, every §A9 fault.

Drivers are plugged in through *adapter modules* next to this file, discovered by name:
``adapter_sync.py`` (the blocking driver) and ``adapter_async.py`` (the asyncio driver). A
missing adapter module fails the collection rather than skipping its half of the suite, so a
renamed driver cannot silently halve it. Adding a driver means adding its module name to
``ADAPTER_MODULES``; the tests need no edit. Each adapter module exposes::

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
The emulator, ``settings`` and ``rest`` are the shared fixtures of ``support.fixtures``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

ADAPTER_MODULES = ("adapter_sync", "adapter_async")


def _adapter(name: str) -> ModuleType:
    """The adapter module ``name`` of this package; a missing one is an error, never a skip."""
    try:
        return importlib.import_module(f"{__package__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.{name}":
            raise  # the adapter exists but imports something missing: that error says what
        raise RuntimeError(
            f"driver adapter module {name}.py is missing from tests/contract: the contract suite"
            " runs every driver in ADAPTER_MODULES; add the module or remove its name there"
        ) from exc


@pytest.fixture(params=[_adapter(name) for name in ADAPTER_MODULES], ids=lambda module: module.NAME)
def driver(request: pytest.FixtureRequest) -> ModuleType:
    """One driver adapter module (see the module docstring)."""
    module: ModuleType = request.param
    return module
