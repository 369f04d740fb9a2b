"""Sensor tests: no metadata DB; the connection comes from an ``AIRFLOW_CONN_*`` JSON variable.

The scratch AIRFLOW_HOME comes from the root ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sensor_support import SENSOR_SCRIPT
from support import connection_json

from airflow_insight.emulator import Emulator


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """The emulator on 127.0.0.1 port 0; ``insight_default`` works, ``insight_bad`` is refused."""
    with Emulator() as running:
        running.add_script("*", SENSOR_SCRIPT)
        monkeypatch.setenv("AIRFLOW_CONN_INSIGHT_DEFAULT", connection_json(running))
        monkeypatch.setenv(
            "AIRFLOW_CONN_INSIGHT_BAD", connection_json(running, client_secret="not-the-secret")
        )
        yield running
