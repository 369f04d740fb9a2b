"""Airflow's secrets masker, for the secrets the transport announces (tokens, client secret).

``mask_secret`` (through common-compat, so one name on every Airflow 3 line) registers the value
with this process's masker and, in a task or trigger runner, with its supervisor, which renders
the task and trigger logs. The transport mints tokens off the triggerer's event loop (in worker
threads), where the supervisor call is safe on every line.
"""

from __future__ import annotations

from airflow.providers.common.compat.sdk import mask_secret

from airflow_insight.transport.secrets import add_secret_listener

__all__ = ["mask_announced_secrets", "mask_value"]


def mask_value(secret: str) -> None:
    """Register ``secret`` with Airflow's secrets masker: log records holding it are redacted."""
    mask_secret(secret)


def mask_announced_secrets() -> None:
    """Send every secret the transport announces to the masker (idempotent, process-wide)."""
    add_secret_listener(mask_value)
