"""Trigger tests: the trigger's run() on a real event loop against the emulator, no metadata DB.

The scratch AIRFLOW_HOME comes from the root ``tests/conftest.py``; the Airflow
connection comes from an ``AIRFLOW_CONN_*`` JSON variable, which ``aget_connection`` reads
without a database.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support import connection_json
from trigger_support import SCRIPT

from airflow_insight.emulator import Emulator, EmulatorConfig


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """Tiny intervals; tests override it to change a field."""
    return EmulatorConfig(ping_interval_seconds=0.05, pong_timeout_seconds=2.0)


@pytest.fixture
def emulator(
    emulator_config: EmulatorConfig, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Emulator]:
    """The emulator on 127.0.0.1 port 0, and connection ``insight_default`` pointing at it."""
    with Emulator(emulator_config) as running:
        running.add_script("*", SCRIPT)
        monkeypatch.setenv("AIRFLOW_CONN_INSIGHT_DEFAULT", connection_json(running))
        yield running
