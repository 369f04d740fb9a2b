"""The bundled Insight emulator: a real HTTP + WebSocket server on loopback for tests and demos.

It shares only the message codec (:mod:`airflow_insight.protocol.messages`) with the client.
See :class:`Emulator`, :class:`EmulatorConfig`, :class:`JobScript` and :mod:`.faults`.
"""

from __future__ import annotations

from airflow_insight.emulator import faults
from airflow_insight.emulator.airflow_connection import airflow_connection_json
from airflow_insight.emulator.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, EmulatorConfig
from airflow_insight.emulator.record import Entry, Record
from airflow_insight.emulator.scripts import NAMED_SCRIPTS, JobScript
from airflow_insight.emulator.server import Emulator

__all__ = [
    "DEMO_CLIENT_ID",
    "DEMO_CLIENT_SECRET",
    "NAMED_SCRIPTS",
    "Emulator",
    "EmulatorConfig",
    "Entry",
    "JobScript",
    "Record",
    "airflow_connection_json",
    "faults",
]
