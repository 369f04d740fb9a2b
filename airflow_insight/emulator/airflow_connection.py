"""The Airflow connection that points at an emulator: plain JSON, no Airflow import.

Tests, the benchmarks and local DAG development all need ``AIRFLOW_CONN_<ID>`` for a running
emulator; this is the one place that spells it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from airflow_insight.emulator.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET


def airflow_connection_json(
    base_url: str,
    *,
    client_id: str = DEMO_CLIENT_ID,
    client_secret: str = DEMO_CLIENT_SECRET,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """An ``insight`` connection in the JSON form of ``AIRFLOW_CONN_<ID>`` (it keeps types)."""
    document: dict[str, Any] = {
        "conn_type": "insight",
        "host": base_url,
        "login": client_id,
        "password": client_secret,
    }
    if extra:
        document["extra"] = dict(extra)
    return json.dumps(document)
