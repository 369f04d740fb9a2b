"""The asyncio driver's REST calls: each one the core asks for runs off the loop, on its own.

The REST calls each run as a task of their own, in a thread, on the one REST client, so one slow
call (a large run log, a server answering at the read timeout) never holds up the other jobs on
the socket; the finished call comes back as an :class:`Answer` (through the driver's inbox) and
its answer goes to the core on the loop task (no locks). The core never asks for a call of a kind
and job that is outstanding. Checks and fetches run in a pool of the driver's own,
``max_workers`` threads (not the default pool the whole triggerer shares); token mints go through
``asyncio.to_thread`` so that they never queue behind slow downloads. The calls share the
client's ``requests.Session`` across threads: one host, so one urllib3 pool (thread-safe); the
token has its own lock in the client. :meth:`RestCalls.close` shuts the pool down without
waiting for a call still running (it ends with its timeouts; its answer is dropped).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
from collections.abc import Callable, Coroutine
from typing import Any

from airflow_insight.exceptions import InsightError
from airflow_insight.protocol import events as ev
from airflow_insight.transport.driving import CallAnswer, RestCall, perform, rest_call
from airflow_insight.transport.rest import InsightRestClient

__all__ = ["Answer", "RestCalls"]

#: Starts a task the driver owns (cancelled by its close()).
Spawn = Callable[[Coroutine[Any, Any, Any]], "asyncio.Task[Any]"]


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    """A finished REST call, for the loop to hand to the core."""

    call_id: int
    task: asyncio.Task[Any]

    def answer(self) -> CallAnswer | None:
        """The call's answer, or None for a call cancelled by close(). Any exception other
        than an :class:`InsightError` is a bug: it is raised."""
        if self.task.cancelled():
            return None
        error = self.task.exception()
        if isinstance(error, InsightError):
            return CallAnswer(self.call_id, error=error)
        if error is not None:
            raise error
        return CallAnswer(self.call_id, self.task.result())


class RestCalls:
    """Runs the core's REST calls; see the module docstring."""

    def __init__(
        self,
        rest: InsightRestClient,
        *,
        spawn: Spawn,
        on_answer: Callable[[Answer], None],
        max_workers: int,
    ) -> None:
        self._rest = rest
        self._spawn = spawn
        self._on_answer = on_answer
        # Threads start on first use; calls beyond the bound queue up in the pool.
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers, thread_name_prefix="insight-rest"
        )

    def start(self, call: RestCall) -> None:
        """Run ``call`` as a task of its own; its :class:`Answer` goes to ``on_answer``."""
        task = self._spawn(self._perform(call))
        task.add_done_callback(lambda done: self._on_answer(Answer(call.call_id, done)))

    async def now(self, call: RestCall) -> CallAnswer:
        """Perform ``call`` and wait for its answer (``open()``: before the loop task runs)."""
        return await asyncio.to_thread(perform, call.call_id, rest_call(self._rest, call))

    def close(self) -> None:
        """Stop taking calls; a thread still in one ends with it (bounded by its timeouts)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _perform(self, call: RestCall) -> Any:
        perform = rest_call(self._rest, call)
        if isinstance(call, ev.TokenRefreshDue):
            # Not in the pool: a token mint must never queue behind slow downloads.
            return await asyncio.to_thread(perform)
        return await asyncio.get_running_loop().run_in_executor(self._pool, perform)
