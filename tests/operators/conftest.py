"""Operator tests without a metadata DB: the connection comes from an ``AIRFLOW_CONN_*`` variable.

The scratch AIRFLOW_HOME comes from the root ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support import connection_json

from airflow_insight.emulator import Emulator, JobScript

#: Runs for minutes unless cancelled.
LONG_SCRIPT = JobScript(name="long", queued_seconds=0.01, log_lines=2000, lines_per_second=10.0)


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """The emulator on 127.0.0.1 port 0, and ``insight_default`` pointing at it."""
    with Emulator() as running:
        running.add_script("*", LONG_SCRIPT)
        monkeypatch.setenv("AIRFLOW_CONN_INSIGHT_DEFAULT", connection_json(running))
        yield running
