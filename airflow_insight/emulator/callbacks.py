"""Solver callbacks as ``APP_MESSAGE`` round trips (protocol §A10, §B4.7.3), without asyncio.

A job whose request lists ``solver.callbacks`` pauses its solve at each enabled callback point:
the solve thread builds the message, hands it to the emulator's loop (``send``) and blocks until
the loop resolves it with the client's answer, the job is deleted, or the answer limit runs out.
Scripted jobs use the same :class:`PendingAppMessage` from the loop itself.

Which xpress callback each name enables, how a job with callbacks ends (interrupt, no answer
within the limit, a dropped socket, a DELETE, an unknown answer) and what the record keeps:
docs/design.md#the-emulators-solver-callbacks.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = [
    "CALLBACK_NAMES",
    "AppAnswer",
    "PendingAppMessage",
    "SolveSession",
    "requested_callbacks",
]

CALLBACK_NAMES = ("GAPNOTIFY", "INTSOL", "GLOBALLOG", "LPLOG", "BARLOG", "CUTLOG")

#: Why a solve stopped early (``SolveResult.stopped_by``).
STOPPED_BY_CLIENT = "client"
STOPPED_BY_TIMEOUT = "timeout"
STOPPED_BY_DELETE = "delete"

#: The run-log line of a solve stopped by an answer's ``interruptSolve``.
INTERRUPTED_LINE = "Solve interrupted: an APP_MESSAGE_RESPONSE asked for interruptSolve"


@dataclasses.dataclass(frozen=True)
class AppAnswer:
    """What the solve does after a callback: go on, change controls, or stop (and why)."""

    interrupt: bool = False
    controls: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    #: Set when the solve must stop: one of the ``STOPPED_BY_*`` values.
    stopped_by: str | None = None


CONTINUE = AppAnswer()


@dataclasses.dataclass
class PendingAppMessage:
    """One APP_MESSAGE sent (or about to be) and waiting for its APP_MESSAGE_RESPONSE."""

    app_message_type: str
    #: The ``appMessage`` object: ``{"problemName": ..., "attributes": {...}}``.
    body: dict[str, Any]
    #: The incumbent for INTSOL (served at ``appMessageFile``), else None.
    file: bytes | None = None
    id: str = dataclasses.field(default_factory=lambda: str(uuid.uuid4()))
    created_at: float = dataclasses.field(default_factory=time.monotonic)
    answer: concurrent.futures.Future[AppAnswer] = dataclasses.field(
        default_factory=concurrent.futures.Future
    )

    def resolve(self, answer: AppAnswer) -> bool:
        """Hand the waiting solve its answer; False if it stopped waiting already."""
        try:
            self.answer.set_result(answer)
        except concurrent.futures.InvalidStateError:
            return False
        return True

    def give_up(self) -> AppAnswer | None:
        """Stop waiting; the answer if one arrived in the meantime, else None."""
        if self.answer.cancel():
            return None
        return self.answer.result()


def requested_callbacks(solver: Mapping[str, Any] | None) -> tuple[tuple[str, ...], list[str]]:
    """The known callback names of a request's ``solver.callbacks``, and a warning per other."""
    raw = (solver or {}).get("callbacks") or []
    names: list[str] = []
    warnings: list[str] = []
    for item in [raw] if isinstance(raw, str) else list(raw) if isinstance(raw, list) else []:
        name = str(item).upper()
        if name not in CALLBACK_NAMES:
            warnings.append(f"solver callback {item!r} is not supported and was ignored")
        elif name not in names:
            names.append(name)
    return tuple(names), warnings


class SolveSession:
    """The link between one running solve (its thread) and the emulator's loop.

    ``send`` is called on the solve thread with each new message and must hand it to the loop
    (``call_soon_threadsafe``); ``on_timeout`` likewise when its limit ran out. ``interrupt``
    may be called from any thread: it stops the solve and releases a waiting callback.
    """

    def __init__(
        self,
        callbacks: Sequence[str],
        send: Callable[[PendingAppMessage], None],
        on_timeout: Callable[[PendingAppMessage], None],
        timeout_seconds: float,
    ) -> None:
        self.callbacks = tuple(callbacks)
        self._send = send
        self._on_timeout = on_timeout
        self._timeout = timeout_seconds
        self._lock = threading.Lock()
        #: One message at a time: MIP threads that hit a callback together queue here.
        self._ask_lock = threading.Lock()
        self._prob: Any = None
        self._pending: PendingAppMessage | None = None
        self.stopped_by: str | None = None

    def attach(self, prob: Any) -> None:
        """The xpress problem being solved (interrupted on :meth:`interrupt`)."""
        with self._lock:
            self._prob = prob
            stopped = self.stopped_by is not None
        if stopped:
            prob.interrupt()

    def interrupt(self, stopped_by: str) -> None:
        """Stop the solve as soon as the optimizer looks, from any thread."""
        with self._lock:
            if self.stopped_by is None:
                self.stopped_by = stopped_by
            prob, pending = self._prob, self._pending
        if pending is not None:
            pending.resolve(AppAnswer(interrupt=True, stopped_by=stopped_by))
        if prob is not None:
            prob.interrupt()

    def ask(self, app_message_type: str, body: dict[str, Any], file: bytes | None) -> AppAnswer:
        """Send one APP_MESSAGE and block until it is answered (solve thread only)."""
        with self._ask_lock:
            if self.stopped_by is not None:
                return AppAnswer(interrupt=True, stopped_by=self.stopped_by)
            pending = PendingAppMessage(app_message_type, body, file)
            with self._lock:
                self._pending = pending
            try:
                self._send(pending)
                try:
                    answer = pending.answer.result(timeout=self._timeout)
                except (TimeoutError, concurrent.futures.CancelledError):
                    late = pending.give_up()
                    if late is not None:
                        answer = late
                    else:
                        self._on_timeout(pending)
                        answer = AppAnswer(interrupt=True, stopped_by=STOPPED_BY_TIMEOUT)
            finally:
                with self._lock:
                    self._pending = None
            if answer.interrupt:
                with self._lock:
                    if self.stopped_by is None:
                        self.stopped_by = answer.stopped_by or STOPPED_BY_CLIENT
            return answer
