"""The bundled Insight emulator: a real HTTP + WebSocket server on loopback for tests and demos.

It shares only the message codec (:mod:`airflow_insight.protocol.messages`) with the client.
See :class:`Emulator`, :class:`EmulatorConfig`, :class:`JobScript` and :mod:`.faults`.

The server needs the ``emulator`` extra (aiohttp). The names below are loaded on first use, so
``python -m airflow_insight.emulator`` can say which extra to install instead of failing on
import, and an install without the extra never imports aiohttp through this package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_insight.emulator import faults
    from airflow_insight.emulator.airflow_connection import airflow_connection_json
    from airflow_insight.emulator.config import (
        DEMO_CLIENT_ID,
        DEMO_CLIENT_SECRET,
        EmulatorConfig,
    )
    from airflow_insight.emulator.record import Entry, Record
    from airflow_insight.emulator.scripts import NAMED_SCRIPTS, JobScript, ScriptedAppMessage
    from airflow_insight.emulator.server import Emulator

#: Public name -> the module that defines it.
_HOMES = {
    "DEMO_CLIENT_ID": "config",
    "DEMO_CLIENT_SECRET": "config",
    "EmulatorConfig": "config",
    "NAMED_SCRIPTS": "scripts",
    "JobScript": "scripts",
    "ScriptedAppMessage": "scripts",
    "Emulator": "server",
    "Entry": "record",
    "Record": "record",
    "airflow_connection_json": "airflow_connection",
}

__all__ = [
    "DEMO_CLIENT_ID",
    "DEMO_CLIENT_SECRET",
    "NAMED_SCRIPTS",
    "Emulator",
    "EmulatorConfig",
    "Entry",
    "JobScript",
    "Record",
    "ScriptedAppMessage",
    "airflow_connection_json",
    "faults",
]


def __getattr__(name: str) -> Any:
    if name == "faults":
        return importlib.import_module(f"{__name__}.faults")
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
