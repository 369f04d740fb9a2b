"""Reading a trigger's event in tests the way the resumed task does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_insight.protocol.outcome import JobOutcome
from airflow_insight.triggers.payload import TriggerPayload


def outcome_from_event(event: Mapping[str, Any]) -> JobOutcome:
    """The outcome a trigger's event carries, or raise what ended the wait (as the trigger had
    it: same class, message, ``permanent`` flag and fields)."""
    return TriggerPayload.from_dict(event).result()
