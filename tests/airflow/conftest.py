"""Airflow-level tests: a real SQLite metadata DB in a temporary AIRFLOW_HOME, and ``dag.test()``.

The scratch AIRFLOW_HOME and the DAGs folder (``tests/airflow/dags``) are set by the root
``tests/conftest.py``, before anything imports airflow. Only tests in this folder use the DB.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dag_support import CONSOLE_WITHOUT_LOGGER_NAMES

from airflow_insight.emulator import (
    NAMED_SCRIPTS,
    Emulator,
    EmulatorConfig,
    JobScript,
)

QUICK = NAMED_SCRIPTS["quick"]
#: Runs long enough to be killed or timed out mid-run.
LONG = JobScript(
    name="long", queued_seconds=0.01, log_lines=2000, lines_per_second=20.0, batch_size=1
)
#: Runs about 20 s, so a second attempt finds it still running on a loaded machine (Airflow
#: 3.0's dag.test() took up to 16 s to start the retry here).
SLOWISH = dataclasses.replace(
    QUICK, name="slowish", log_lines=200, lines_per_second=10.0, batch_size=2
)


if CONSOLE_WITHOUT_LOGGER_NAMES:
    import sys

    import structlog

    # Airflow 3.0's dag.test() leaves structlog at its defaults, whose printer holds the stdout
    # of its first use (pytest's session capture): print to the process's stdout instead, so
    # capfd sees what a user of dag.test() sees (the task's failure among it), with tracebacks
    # as plain text rather than rich's wrapped boxes.
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.StackInfoRenderer(),
            structlog.dev.set_exc_info,
            structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=False),
            structlog.dev.ConsoleRenderer(
                colors=False, exception_formatter=structlog.dev.plain_traceback
            ),
        ],
        logger_factory=structlog.PrintLoggerFactory(sys.__stdout__),
    )


@pytest.fixture(scope="session", autouse=True)
def airflow_db() -> None:
    """Migrate the SQLite metadata DB once per session."""
    from airflow.utils.db import initdb

    initdb()


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    """One emulator for the session; job scripts chosen by job id (the DAG id prefix)."""
    config = EmulatorConfig(
        ping_interval_seconds=0.1, pong_timeout_seconds=5.0, default_script=QUICK
    )
    with Emulator(config) as running:
        running.add_script("t_failed.*", NAMED_SCRIPTS["failed"])
        running.add_script("t_model_error.*", NAMED_SCRIPTS["model-error"])
        running.add_script("t_timeout.*", LONG)
        running.add_script("t_kill.*", LONG)
        running.add_script("t_interrupt.*", LONG)
        running.add_script("t_reattach.*", SLOWISH)
        yield running


@pytest.fixture(autouse=True)
def insight_connection(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """insight_default points at the emulator (JSON form keeps the types)."""
    monkeypatch.setenv("AIRFLOW_CONN_INSIGHT_DEFAULT", emulator.airflow_connection_json())


@pytest.fixture
def collected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], dict[str, Any]]:
    """What the test DAGs' ``collect`` task received (read after the run)."""
    out = tmp_path / "collected.json"
    monkeypatch.setenv("INSIGHT_TEST_OUT", str(out))

    def read() -> dict[str, Any]:
        data: dict[str, Any] = json.loads(out.read_text())
        return data

    return read


class _ConsoleCapture:
    """``capfd`` whose ``out`` also holds the stdlib log records pytest's ``caplog`` caught.

    From 3.1 on ``dag.test()`` routes stdlib logging (the operators' ``self.log``) through
    structlog to the console, so ``capfd`` sees every record. Airflow 3.0's ``dag.test()`` keeps
    stdlib records off the captured console; its records are read from ``caplog`` instead.
    """

    def __init__(self, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture):
        self._capfd = capfd
        self._caplog = caplog
        self._read = 0

    def readouterr(self) -> Any:
        captured = self._capfd.readouterr()
        if not CONSOLE_WITHOUT_LOGGER_NAMES:
            return captured
        text = self._caplog.text
        records, self._read = text[self._read :], len(text)
        return type(captured)(captured.out + records, captured.err)


@pytest.fixture
def capfd(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> _ConsoleCapture:
    """What a user of ``dag.test()`` sees on the console, on every Airflow line."""
    caplog.set_level(logging.INFO)
    return _ConsoleCapture(capfd, caplog)
