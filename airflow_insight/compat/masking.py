"""Airflow's secrets masker, for the secrets the transport announces (tokens, client secret).

Task and trigger logs are rendered, and masked, by the supervisor process, so each secret must
reach the supervisor's masker, not only this process's. Two roads, by where the secret turns up:

* A task process (worker; also ``dag.test()``): ``mask_secret`` (through common-compat, one name
  on every Airflow 3 line) registers it here and with the supervisor.
* A triggerer, whose triggers share one event loop: its channel to the supervisor is not safe to
  use from any thread on every line (before 3.2 a blocking send from a worker thread opens an
  event loop of its own on the channel's streams; on the loop's own thread it raises). The
  secret goes as the trigger's own request (:func:`~airflow_insight.compat.supervisor.ask`) on
  that loop: a mint in a worker thread waits (bounded) until the supervisor has it, so a line
  logged after the mint is masked; on the loop's thread the request is left to run.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Future
from typing import Any

from airflow.providers.common.compat.sdk import mask_secret

from airflow_insight.compat.supervisor import ASK_TIMEOUT_SECONDS, SupervisorUnavailable, ask
from airflow_insight.transport.secrets import add_secret_listener

__all__ = ["mask_announced_secrets", "mask_value"]

log = logging.getLogger(__name__)

#: The triggerer's event loop, once a hook was made on it (triggers are made on that loop).
_trigger_loop: asyncio.AbstractEventLoop | None = None
#: Requests sent from the loop's own thread, kept alive until answered.
_PENDING: set[asyncio.Task[Any]] = set()


def mask_announced_secrets() -> None:
    """Send every secret the transport announces to the masker (idempotent, process-wide).

    Called where a hook is made: on a triggerer's event loop, it also notes that loop.
    """
    global _trigger_loop
    loop = _running_loop()
    if loop is not None and _triggerer_channel() is not None:
        _trigger_loop = loop
    add_secret_listener(mask_value)


def mask_value(secret: str) -> None:
    """Register ``secret`` with Airflow's secrets masker: log records holding it are redacted."""
    loop = _trigger_loop
    if loop is None or loop.is_closed() or not loop.is_running():
        mask_secret(secret)
        return
    if _running_loop() is loop:
        task = loop.create_task(_tell_supervisor(secret))
        _PENDING.add(task)
        task.add_done_callback(_PENDING.discard)
        return
    future: Future[None] = asyncio.run_coroutine_threadsafe(_tell_supervisor(secret), loop)
    try:
        future.result(timeout=ASK_TIMEOUT_SECONDS + 1.0)
    except TimeoutError:
        log.warning("The triggerer's supervisor did not confirm a secret to mask in time")


async def _tell_supervisor(secret: str) -> None:
    from airflow.sdk.execution_time.comms import MaskSecret

    try:
        await ask(MaskSecret(value=secret, name=None))
    except SupervisorUnavailable as exc:
        # The message names the channel's failure only, never the request's content.
        log.warning("Could not register a secret with the triggerer's supervisor (%s)", exc)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _triggerer_channel() -> Any:
    """The triggerer's channel to its supervisor, or None in any other process."""
    from airflow.sdk.execution_time import task_runner

    channel = getattr(task_runner, "SUPERVISOR_COMMS", None)
    # The trigger runner's channel class, on every Airflow 3 line; a task's has another.
    return channel if type(channel).__name__ == "TriggerCommsDecoder" else None
