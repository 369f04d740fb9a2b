"""Seeing the triggerer stop while its supervisor can still answer.

Airflow 3.3.2's trigger runner (``airflow/jobs/triggerer_job_runner.py``) stops on SIGTERM or
SIGINT (``TriggerRunner._handle_signal`` sets ``stop``): the supervisor sends SIGINT when it is
itself stopped (``TriggerRunnerSupervisor.kill`` from ``_execute``'s ``finally``), and a deploy
that signals the whole process group (dumb-init, systemd) hands the runner its SIGTERM directly.
``arun``'s ``finally`` then cancels the comms reader task *first*; only afterwards does
``asyncio.run`` cancel the trigger tasks, whose ``cleanup()`` runs when no answer from the
supervisor can be read any more (its requests are still served, during ``kill``'s escalation
delay, but the runner never reads the replies). A final watermark written from ``cleanup()``
therefore never gets confirmed, however long it waits.

Decision: the first Insight trigger of a trigger runner chains a handler in front of Airflow's
for SIGTERM and SIGINT (only when the installed handler is ``TriggerRunner._handle_signal``, so
nothing changes elsewhere, e.g. inline under ``dag.test``). On the first signal it runs
``on_stop`` (stop forwarding, store the final watermarks) on the loop, bounded by a budget, and
only then calls Airflow's handler, with the same signal: the runner stops as it would have, at
most that budget later. Signals that arrive meanwhile are passed on after it, in order.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import signal
import threading
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

from airflow_insight.compat.runner import is_stop_handler

log = logging.getLogger(__name__)

#: The signals that stop Airflow's trigger runner.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class ShutdownGuard:
    """Runs ``on_stop`` before Airflow's trigger runner acts on its stop signal."""

    def __init__(self, on_stop: Callable[[], Awaitable[None]], budget_seconds: float) -> None:
        self._on_stop = on_stop
        self._budget = budget_seconds
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: dict[signal.Signals, Any] = {}
        self._pending: list[tuple[signal.Signals, FrameType | None]] = []
        self._task: asyncio.Task[None] | None = None
        self.stopping = False

    def install(self) -> bool:
        """Chain in front of Airflow's handlers; False (nothing done) outside a trigger runner."""
        if self._previous or threading.current_thread() is not threading.main_thread():
            return bool(self._previous)
        handlers = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
        if not all(is_stop_handler(handler) for handler in handlers.values()):
            return False
        self._loop = asyncio.get_running_loop()
        for signum, handler in handlers.items():
            self._previous[signum] = handler
            signal.signal(signum, self._on_signal)
        return True

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # A signal handler: only hand over to the loop (this also wakes its selector).
        self._pending.append((signal.Signals(signum), frame))
        if not self.stopping and self._loop is not None:
            self.stopping = True
            self._loop.call_soon_threadsafe(self._begin)

    def _begin(self) -> None:
        loop = asyncio.get_running_loop()
        # A context of its own: its log lines belong to no one trigger's task log.
        self._task = loop.create_task(self._stop_then_pass_on(), context=contextvars.Context())

    async def _stop_then_pass_on(self) -> None:
        try:
            async with asyncio.timeout(self._budget):
                await self._on_stop()
        except TimeoutError:
            log.warning("Gave up storing the final watermarks after %g s", self._budget)
        except Exception:
            log.exception("Storing the final watermarks failed")
        finally:
            self._pass_on()

    def _pass_on(self) -> None:
        """Give the signals back to Airflow: restore its handlers, then call them."""
        previous, self._previous = self._previous, {}
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        pending, self._pending = self._pending, []
        for signum, frame in pending:
            handler = previous.get(signum)
            if callable(handler):
                handler(signum, frame)
