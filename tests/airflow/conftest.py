"""Airflow-level tests: a real SQLite metadata DB in a temporary AIRFLOW_HOME, and ``dag.test()``.

The scratch AIRFLOW_HOME and the DAGs folder (``tests/airflow/dags``) are set by the root
``tests/conftest.py``, before anything imports airflow. Only tests in this folder use the DB.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

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
#: Runs a little while, so a second attempt finds it still running.
SLOWISH = dataclasses.replace(
    QUICK, name="slowish", log_lines=30, lines_per_second=20.0, batch_size=2
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
