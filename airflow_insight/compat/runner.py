"""The trigger runner's private parts the triggers rely on, each behind a feature check.

* :func:`is_stop_handler`: whether a signal handler is Airflow's ``TriggerRunner._handle_signal``
  (3.1.6 on; feature ``clean-stop guard``), which the clean-stop guard chains in front of.
* :func:`log_stream_fd`: the local stream socket a trigger's structlog records travel over to
  the triggerer's supervisor (feature ``log-delivery wait``). Airflow's own logger factory keeps
  the stream as ``io`` (3.1 on); structlog's factories, which 3.0 uses, as ``_file``.
* :func:`finish_despite_cancels`: before 3.3 the runner cancels a trigger it no longer owns
  again on every turn of its loop (``to_cancel`` holds it until its task ends), so work in
  ``cleanup()`` that takes longer than a turn is cut off unless it runs on by itself.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Coroutine
from typing import Any

import structlog

from airflow_insight.compat.features import clean_stop_guard, log_delivery_wait


def is_stop_handler(handler: Any) -> bool:
    """Whether ``handler`` is Airflow's ``TriggerRunner._handle_signal`` (bound)."""
    if not clean_stop_guard().on:
        return False
    owner = getattr(handler, "__self__", None)
    return (
        getattr(handler, "__name__", None) == "_handle_signal"
        and type(owner).__name__ == "TriggerRunner"
    )


def log_stream_fd() -> int | None:
    """The local stream socket this process's structlog output goes to, or None."""
    if not log_delivery_wait().on:
        return None
    factory: Any = structlog.get_config().get("logger_factory")
    stream = getattr(factory, "io", None) or getattr(factory, "_file", None)
    fileno = getattr(stream, "fileno", None)
    if fileno is None:
        return None
    try:
        fd = int(fileno())
        probe = socket.socket(fileno=fd)
    except (OSError, ValueError):  # closed, or not a socket
        return None
    try:
        # On a TCP socket the same number counts bytes the peer's kernel has not acknowledged.
        local_stream = probe.family == socket.AF_UNIX and probe.type == socket.SOCK_STREAM
    finally:
        probe.detach()  # the fd stays open: it is the logging stream's
    return fd if local_stream else None


async def finish_despite_cancels(work: Coroutine[Any, Any, None], budget_seconds: float) -> None:
    """Run ``work`` to its end in a task of its own, however often this caller is cancelled,
    for at most ``budget_seconds``; a cancel that came meanwhile is raised again afterwards."""
    task = asyncio.get_running_loop().create_task(work)
    cancelled = False
    deadline = asyncio.get_running_loop().time() + budget_seconds
    while not task.done():
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            task.cancel()
            break
        try:
            await asyncio.wait_for(asyncio.shield(task), remaining)
        except asyncio.CancelledError:
            cancelled = True  # the runner's repeated cancel: the work goes on
        except TimeoutError:
            task.cancel()
            break
    if task.done() and not task.cancelled():
        task.exception()  # the work handles its own errors; anything else is shown in the log
    if cancelled:
        raise asyncio.CancelledError
