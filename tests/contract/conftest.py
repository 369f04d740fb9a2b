"""The driver contract suite: every driver, the emulator on 127.0.0.1 port 0, every §A9 fault.

Drivers are plugged in through *adapter modules* next to this file (``adapter_sync.py``, the
blocking driver; ``adapter_async.py``, the asyncio driver), each exposing what
``DriverAdapter`` says. A missing adapter module fails the collection rather than skipping its
half of the suite, so a renamed driver cannot silently halve it. Adding a driver means adding
its module name to ``ADAPTER_MODULES``; the tests need no edit. The emulator, ``settings`` and
``rest`` are the shared fixtures of ``support.fixtures``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, Protocol

import pytest

from airflow_insight.protocol.follower import FollowerConfig
from airflow_insight.protocol.outcome import JobOutcome
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport.rest import InsightRestClient

ADAPTER_MODULES = ("adapter_sync", "adapter_async")


class DriverAdapter(Protocol):
    """What an adapter module exposes: blocking calls (an async adapter wraps its coroutine in
    ``asyncio.run``). ``rest`` is made and closed by the test; the adapter must not close it."""

    #: The test id, e.g. "sync" / "async".
    NAME: str

    def follow_job(
        self,
        settings: ConnectionSettings,
        rest: InsightRestClient,
        job_request: Mapping[str, Any],
        payload: bytes | None,
        *,
        config: FollowerConfig,
        on_line: Callable[[str], None],
        timeout_seconds: float,
    ) -> JobOutcome:
        """Open the socket, submit the job with its connection-id, follow it to its end.

        Calls ``on_line(text)`` for every forwarded run-log line, in order; raises
        ``TimeoutError`` after ``timeout_seconds``; lets ``InsightError`` subclasses (e.g.
        ``SubmitRejected``) propagate.
        """
        ...

    def reattach(
        self,
        settings: ConnectionSettings,
        rest: InsightRestClient,
        job_id: str,
        *,
        execution_attempts: int,
        last_run_log_line: int,
        config: FollowerConfig,
        on_line: Callable[[str], None],
        timeout_seconds: float,
    ) -> JobOutcome:
        """Follow a job submitted earlier (no submit), resuming after ``last_run_log_line``:
        only later lines reach ``on_line``."""
        ...


def _adapter(name: str) -> ModuleType:
    """The adapter module ``name`` of this package; a missing or incomplete one is an error,
    never a skip."""
    try:
        module = importlib.import_module(f"{__package__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.{name}":
            raise  # the adapter exists but imports something missing: that error says what
        raise RuntimeError(
            f"driver adapter module {name}.py is missing from tests/contract: the contract suite"
            " runs every driver in ADAPTER_MODULES; add the module or remove its name there"
        ) from exc
    missing = [part for part in ("NAME", "follow_job", "reattach") if not hasattr(module, part)]
    if missing:
        raise RuntimeError(f"driver adapter module {name}.py lacks {missing}: see DriverAdapter")
    return module


@pytest.fixture(params=[_adapter(name) for name in ADAPTER_MODULES], ids=lambda module: module.NAME)
def driver(request: pytest.FixtureRequest) -> ModuleType:
    """One driver adapter module (a ``DriverAdapter``)."""
    module: ModuleType = request.param
    return module
