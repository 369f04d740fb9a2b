"""The async driver runs each REST call as a task of its own: a slow one holds up no other job.

One :class:`AsyncJobFollower` (one socket) against the emulator on 127.0.0.1 port 0. The
emulator's ``Delay`` fault holds a run-log GET; ``send_runlog_completed=False`` makes every job
end through that GET (the socket never says it brought the whole log). Ordering is read from
the emulator's record (when the held response went out), never from the wall clock.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import gc
import logging
from collections.abc import Callable
from typing import Any

import pytest
from support import emulator_settings

from airflow_insight.emulator import (
    Emulator,
    EmulatorConfig,
    JobScript,
)
from airflow_insight.emulator import faults as f
from airflow_insight.protocol import events as ev
from airflow_insight.protocol.follower import FollowerConfig
from airflow_insight.protocol.outcome import JobOutcome
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport import async_driver
from airflow_insight.transport.async_driver import AsyncJobFollower
from airflow_insight.transport.driving import DriverEvent
from airflow_insight.transport.rest import InsightRestClient

#: How long the emulator holds the slow GET: long enough for a short job to live and end in.
SLOW_SECONDS = 3.0
#: The core asks again for a late answer after this long: many times during the slow GET.
SILENCE_LIMIT_SECONDS = 0.2
WAIT_SECONDS = 20.0

#: A job that is quick to end: a few lines, then COMPLETED.
QUICK = JobScript(
    name="quick",
    queued_seconds=0.02,
    status_step_seconds=0.02,
    log_lines=12,
    lines_per_second=200.0,
    batch_size=3,
    completing_seconds=0.02,
)


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """Without RUNLOG_COMPLETED: every job's end waits for its run-log GET."""
    return EmulatorConfig(
        ping_interval_seconds=0.05,
        pong_timeout_seconds=2.0,
        send_runlog_completed=False,
        default_script=QUICK,
    )


def _settings(emulator: Emulator) -> ConnectionSettings:
    return emulator_settings(emulator, read_timeout_seconds=10.0)


def _request(job_id: str) -> dict[str, Any]:
    return {"id": job_id, "computeJobType": "SOLVER", "runLogMessages": True}


def _run_log_path(emulator: Emulator, job_id: str) -> str:
    return f"/api/scenarios/{emulator.hub.jobs[job_id].scenario_id}/run-log"


def _held(emulator: Emulator, path: str) -> int:
    """How many responses to ``path`` the emulator started holding (Delay fault fired)."""
    faults = emulator.record.of_kind("fault")
    return sum(1 for e in faults if e.data.get("fault") == "delay" and e.data["path"] == path)


def _answered(emulator: Emulator, path: str) -> int:
    """How many responses to GET ``path`` went out."""
    responses = emulator.record.of_kind("http_response")
    return sum(1 for e in responses if e.data["method"] == "GET" and e.data["path"] == path)


async def _until(condition: Callable[[], bool], timeout: float = WAIT_SECONDS) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


class _Seen:
    """Every forwarded line and every driver event, by job."""

    def __init__(self) -> None:
        self.lines: dict[str, list[str]] = collections.defaultdict(list)
        self.events: list[DriverEvent] = []

    def on_event(self, event: DriverEvent) -> None:
        if isinstance(event, ev.RunLogLines):
            self.lines[event.job_id].extend(event.lines)
        self.events.append(event)

    def fetches_asked(self, job_id: str) -> int:
        asked = [e for e in self.events if isinstance(e, ev.RunLogFetchDue)]
        return sum(1 for e in asked if e.job_id == job_id)


def _follower(emulator: Emulator, rest: InsightRestClient, seen: _Seen) -> AsyncJobFollower:
    return AsyncJobFollower(
        _settings(emulator),
        rest,
        on_event=seen.on_event,
        config=FollowerConfig(silence_limit_seconds=SILENCE_LIMIT_SECONDS),
    )


def test_a_slow_run_log_get_holds_up_no_other_job_on_the_socket(emulator: Emulator) -> None:
    seen = _Seen()
    emulator.add_script("slow-a", dataclasses.replace(QUICK, queued_seconds=0.3))

    async def main() -> tuple[JobOutcome | None, JobOutcome | None, dict[str, Any]]:
        with InsightRestClient(_settings(emulator)) as rest:
            async with _follower(emulator, rest, seen) as driver:
                await driver.open()
                await driver.submit(_request("slow-a"))
                path = _run_log_path(emulator, "slow-a")
                # Armed while A is still QUEUED (0.3 s): its one run-log GET is held.
                emulator.inject(f.Delay("GET", path, SLOW_SECONDS))
                await _until(lambda: _held(emulator, path) == 1)
                # B lives and ends entirely while A's GET is held, on the same socket.
                await driver.submit(_request("fast-b"))
                b = await driver.wait("fast-b", timeout_seconds=WAIT_SECONDS)
                at_b_end = {
                    "a_answered": _answered(emulator, path),
                    "a_outcome": await driver.wait("slow-a", timeout_seconds=0),
                }
                a = await driver.wait("slow-a", timeout_seconds=WAIT_SECONDS)
                at_b_end["a_gets"] = len(emulator.record.requests("GET", path))
                return a, b, at_b_end

    a, b, at_b_end = asyncio.run(main())
    assert b is not None and b.status == "COMPLETED"
    # B's end came while A's GET was still held: nothing waited behind it.
    assert at_b_end["a_answered"] == 0
    assert at_b_end["a_outcome"] is None
    assert seen.lines["fast-b"] == emulator.run_log("fast-b")
    # A still ends as it should, with every line exactly once.
    assert a is not None and a.status == "COMPLETED" and a.run_log_complete
    assert seen.lines["slow-a"] == emulator.run_log("slow-a")
    # The core tracks the GET it asked for: not asked again while it was out, one GET only.
    assert seen.fetches_asked("slow-a") == 1
    assert at_b_end["a_gets"] == 1


def test_at_most_the_bound_of_rest_calls_run_at_once(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four jobs end together, each run-log GET held: only two GETs are out at any time."""
    monkeypatch.setattr(async_driver, "MAX_CONCURRENT_REST_CALLS", 2)
    emulator.inject(f.Delay("GET", "/api/scenarios/*/run-log", 0.5, times=None))
    job_ids = [f"bound-{n}" for n in range(4)]
    seen = _Seen()

    async def main() -> list[JobOutcome | None]:
        with InsightRestClient(_settings(emulator)) as rest:
            async with _follower(emulator, rest, seen) as driver:
                await driver.open()
                for job_id in job_ids:
                    await driver.submit(_request(job_id))
                waits = [driver.wait(job_id, timeout_seconds=WAIT_SECONDS) for job_id in job_ids]
                return list(await asyncio.gather(*waits))

    outcomes = asyncio.run(main())
    for job_id, outcome in zip(job_ids, outcomes, strict=True):
        assert outcome is not None and outcome.status == "COMPLETED", job_id
        assert seen.lines[job_id] == emulator.run_log(job_id)
    paths = {_run_log_path(emulator, job_id) for job_id in job_ids}
    in_flight, most = 0, 0
    for entry in emulator.record.entries():
        if entry.data.get("path") not in paths:
            continue
        if entry.kind == "fault":
            in_flight += 1
            most = max(most, in_flight)
        elif entry.kind == "http_response":
            in_flight -= 1
    assert most == 2


def test_close_cancels_and_awaits_a_call_in_flight(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """close() does not wait for a held GET, and leaves no task pending or unretrieved."""
    seen = _Seen()

    async def main() -> int:
        with InsightRestClient(_settings(emulator)) as rest:
            driver = _follower(emulator, rest, seen)
            await driver.open()
            emulator.inject(f.Delay("GET", "/api/scenarios/*/run-log", 1.0))
            await driver.submit(_request("closed-1"))
            await _until(lambda: _held(emulator, _run_log_path(emulator, "closed-1")) == 1)
            await driver.close()
            answered = _answered(emulator, _run_log_path(emulator, "closed-1"))
            assert all(task.done() for task in asyncio.all_tasks() - {asyncio.current_task()})
            return answered

    with caplog.at_level(logging.WARNING, logger="asyncio"):
        answered_at_close = asyncio.run(main())
        gc.collect()
    assert answered_at_close == 0
    assert [r for r in caplog.records if r.name == "asyncio"] == []
