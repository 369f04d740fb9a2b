"""A trigger's request to its supervisor is never cut off where the runner serves one at a time.

Before Airflow 3.2.2 the trigger runner's ``asend`` writes a request and then reads the next
reply under a lock; a request cancelled after its frame went out leaves its reply to the next
caller. :class:`OneAtATimeComms` keeps that contract (replies in request order, one reader at a
time) and fails the way Airflow does when a reply is left behind.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from airflow.sdk.execution_time import task_runner

from airflow_insight.compat import features, supervisor
from airflow_insight.compat.runner import finish_despite_cancels


class OneAtATimeComms:
    """Requests answered in order after ``delay`` seconds each, read under one lock."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self._lock = asyncio.Lock()
        self._replies: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
        self._sent = 0
        self.finished: list[str] = []

    async def asend(self, message: Any) -> Any:
        self._sent += 1
        frame_id = self._sent
        asyncio.get_running_loop().call_later(
            self.delay, self._replies.put_nowait, (frame_id, f"answer to {message}")
        )
        async with self._lock:
            got_id, answer = await self._replies.get()
            if got_id != frame_id:
                raise RuntimeError(f"Response read out of order! Got {got_id=}, {frame_id=}")
            self.finished.append(answer)
            return answer


@pytest.fixture
def one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> OneAtATimeComms:
    comms = OneAtATimeComms(delay=0.3)
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", comms, raising=False)
    return comms


def _concurrent_requests(monkeypatch: pytest.MonkeyPatch, on: bool) -> None:
    feature = dataclasses.replace(features.concurrent_supervisor_requests(), on=on)
    monkeypatch.setattr(supervisor, "concurrent_supervisor_requests", lambda: feature)


async def _late_then_next() -> tuple[str, Any]:
    try:
        await supervisor.ask("first", timeout=0.1)
    except supervisor.SupervisorUnavailable as exc:
        first = str(exc)
    else:
        first = "answered"
    return first, await supervisor.ask("second", timeout=5.0)


def test_without_concurrent_requests_a_late_request_finishes_and_the_next_gets_its_own_answer(
    one_at_a_time: OneAtATimeComms, monkeypatch: pytest.MonkeyPatch
) -> None:
    _concurrent_requests(monkeypatch, on=False)
    first, second = asyncio.run(_late_then_next())
    assert first == "no answer within 0.1 s"
    assert second == "answer to second"
    assert one_at_a_time.finished == ["answer to first", "answer to second"]


def test_cutting_a_request_off_would_hand_its_answer_to_the_next_caller(
    one_at_a_time: OneAtATimeComms, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why the guard exists: with requests cut off (as a concurrent runner allows) the old
    runner's next caller reads the wrong reply."""
    _concurrent_requests(monkeypatch, on=True)
    with pytest.raises(supervisor.SupervisorUnavailable, match="out of order"):
        asyncio.run(_late_then_next())


def test_work_in_cleanup_finishes_however_often_the_runner_cancels() -> None:
    """Airflow before 3.3 cancels a trigger again on every turn of its runner's loop."""
    finished: list[str] = []

    async def work() -> None:
        await asyncio.sleep(0.5)
        finished.append("done")

    async def main() -> None:
        task = asyncio.create_task(finish_despite_cancels(work(), budget_seconds=10))
        await asyncio.sleep(0)  # cleanup() has begun when the runner cancels it again
        while not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=0.05)
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert finished == ["done"]


def test_work_in_cleanup_stops_at_its_budget() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    async def main() -> None:
        await finish_despite_cancels(forever(), budget_seconds=0.2)

    asyncio.run(main())  # returns (the work cancelled) instead of hanging
