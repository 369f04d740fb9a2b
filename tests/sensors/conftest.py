"""Sensor tests: no metadata DB; the connection comes from an ``AIRFLOW_CONN_*`` JSON variable.

The scratch AIRFLOW_HOME comes from the root ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sensor_support import SENSOR_SCRIPT

from airflow_insight.emulator import DEMO_CLIENT_SECRET, Emulator


def _connection(emulator: Emulator, secret: str) -> str:
    return emulator.airflow_connection_json(
        client_secret=secret, extra={"connect_timeout_seconds": 2, "read_timeout_seconds": 5}
    )


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """The emulator on 127.0.0.1 port 0; ``insight_default`` works, ``insight_bad`` is refused."""
    with Emulator() as running:
        running.add_script("*", SENSOR_SCRIPT)
        monkeypatch.setenv("AIRFLOW_CONN_INSIGHT_DEFAULT", _connection(running, DEMO_CLIENT_SECRET))
        monkeypatch.setenv("AIRFLOW_CONN_INSIGHT_BAD", _connection(running, "not-the-secret"))
        yield running
