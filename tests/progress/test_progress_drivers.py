"""SolverProgress wired into both drivers' ``app_messages=``, against the emulator on 127.0.0.1:0.

The emulator's socket sends APP_MESSAGE frames written out as literal wire text while a scripted
job runs; the test reads the emulator's record of the answers it received. The job is then
cancelled over REST so the test does not wait for the script's end.
"""

from __future__ import annotations

import asyncio
import logging
import string
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_insight.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Emulator, EmulatorConfig
from airflow_insight.emulator.scripts import JobScript
from airflow_insight.protocol import progress as p
from airflow_insight.protocol.events import RunLogLines
from airflow_insight.protocol.follower import FollowerConfig
from airflow_insight.protocol.outcome import JobOutcome
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport.async_driver import AsyncJobFollower
from airflow_insight.transport.rest import InsightRestClient
from airflow_insight.transport.retry import RetryPolicy
from airflow_insight.transport.sync_driver import SyncJobFollower

# Room for a loaded 2-core machine; nothing here is a speed assertion.
LIMIT_SECONDS = 60.0
# Long enough that the job is still running when the messages come (the test cancels it).
LONG_JOB = JobScript(name="long", log_lines=100_000, lines_per_second=20.0, batch_size=5)

# Gap 6.8 %, then 2.1 %, then 0.796 %: the third crosses the 1 % rule.
FIGURES = [(5906.0, 5503.2, 2), (5722.0, 5602.5, 5), (5680.0, 5634.8, 16)]


APP_MESSAGE_TEXT = string.Template(
    '{"computeJobId": "$job", "messageType": "APP_MESSAGE", "messagePayload": '
    '{"appMessageId": "msg-$number", "appMessageType": "GLOBALLOG", '
    '"appMessage": {"problemName": "fctp", "attributes": {'
    '"MIPBESTOBJVAL": {"key": 2006, "name": "MIPBESTOBJVAL", "value": $best}, '
    '"BESTBOUND": {"key": 2004, "name": "BESTBOUND", "value": $bound}, '
    '"MIPSOLS": {"key": 1011, "name": "MIPSOLS", "value": $sols}, '
    '"OBJSENSE": {"key": 2008, "name": "OBJSENSE", "value": 1}}}}}'
)


def app_message_text(job_id: str, number: int, best: float, bound: float, sols: int) -> str:
    """One APP_MESSAGE as literal wire text, shaped as in the protocol reference (§B4.7.3)."""
    return APP_MESSAGE_TEXT.substitute(job=job_id, number=number, best=best, bound=bound, sols=sols)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(ping_interval_seconds=0.5, pong_timeout_seconds=30.0)) as running:
        running.add_script("*", LONG_JOB)
        yield running


@pytest.fixture
def settings(emulator: Emulator) -> ConnectionSettings:
    return ConnectionSettings(
        base_url=emulator.base_url,
        client_id=DEMO_CLIENT_ID,
        client_secret=DEMO_CLIENT_SECRET,
        connect_timeout_seconds=5.0,
        read_timeout_seconds=10.0,
    )


@pytest.fixture
def rest(settings: ConnectionSettings) -> Iterator[InsightRestClient]:
    policy = RetryPolicy(max_attempts=5, base_delay_seconds=0.01, max_delay_seconds=0.1)
    with InsightRestClient(settings, retry_policy=policy) as client:
        yield client


def _ignore_lines(batch: RunLogLines) -> None:
    del batch


def log_event(event: Any) -> None:
    """What an adapter does with each event: progress on its own logger (``logger_name``)."""
    name = getattr(event, "logger_name", "tests.progress.driver")
    logging.getLogger(name).log(event.log_level, event.describe())


def follow_sync(
    settings: ConnectionSettings, rest: InsightRestClient, request: dict[str, Any], handler: Any
) -> JobOutcome | None:
    with SyncJobFollower(
        settings, rest, on_lines=_ignore_lines, config=FollowerConfig(), on_event=log_event
    ) as driver:
        driver.open()
        driver.submit(request, None, app_messages=handler)
        return driver.wait(request["id"], timeout_seconds=LIMIT_SECONDS)


def follow_async(
    settings: ConnectionSettings, rest: InsightRestClient, request: dict[str, Any], handler: Any
) -> JobOutcome | None:
    async def main() -> JobOutcome | None:
        async with AsyncJobFollower(
            settings, rest, on_lines=_ignore_lines, config=FollowerConfig(), on_event=log_event
        ) as driver:
            await driver.open()
            await driver.submit(request, None, app_messages=handler)
            return await driver.wait(request["id"], timeout_seconds=LIMIT_SECONDS)

    return asyncio.run(main())


Follow = Callable[[ConnectionSettings, InsightRestClient, dict[str, Any], Any], "JobOutcome | None"]


def send_from_emulator(emulator: Emulator, job_id: str, text: str) -> None:
    """Queue ``text`` on the socket the emulator routes ``job_id``'s events to."""

    def enqueue() -> None:
        job = emulator.hub.jobs[job_id]
        connection = emulator.hub.connection_of(job)
        assert connection is not None, "the job has no socket to send to"
        connection.enqueue([text], job_id)

    emulator._call(enqueue)


def has_socket(emulator: Emulator, job_id: str) -> bool:
    def routed() -> bool:
        job = emulator.hub.jobs.get(job_id)
        return job is not None and emulator.hub.connection_of(job) is not None

    result: bool = emulator._call(routed)
    return result


def answers_received(emulator: Emulator, job_id: str) -> list[dict[str, Any]]:
    return [
        entry.data
        for entry in emulator.hub.record.of_kind("app_message_response")
        if entry.compute_job_id == job_id
    ]


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + LIMIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.mark.parametrize("follow", [follow_sync, follow_async], ids=["sync", "async"])
def test_handler_answers_and_stops_at_the_gap_in_both_drivers(
    follow: Follow,
    emulator: Emulator,
    settings: ConnectionSettings,
    rest: InsightRestClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    job_id = f"progress-{follow.__name__}"
    request = p.with_progress_callbacks(
        {"id": job_id, "computeJobType": "SOLVER", "solver": {"problemType": "MIP"}}
    )
    handler = p.SolverProgress([p.StopAtGap(0.01)])
    outcome: list[JobOutcome | None] = []
    follower = threading.Thread(
        target=lambda: outcome.append(follow(settings, rest, request, handler)), daemon=True
    )
    follower.start()
    emulator.wait_for_status(job_id, {"EXECUTING"}, timeout_seconds=LIMIT_SECONDS)
    # The job's events go to the socket once the submit named it (connection-id, §A4).
    wait_for(lambda: has_socket(emulator, job_id), "the job's socket")

    for number, (best, bound, sols) in enumerate(FIGURES, start=1):
        send_from_emulator(emulator, job_id, app_message_text(job_id, number, best, bound, sols))
        wait_for(lambda n=number: len(answers_received(emulator, job_id)) >= n, f"answer {number}")
    with InsightRestClient(settings) as other_client:  # the follower thread has its own
        other_client.cancel_job(job_id)
    follower.join(LIMIT_SECONDS)

    assert not follower.is_alive()
    assert outcome and outcome[0] is not None and outcome[0].status == "CANCELLED"
    answers = answers_received(emulator, job_id)
    assert answers == [
        {"appMessageId": "msg-1", "interrupt": False},
        {"appMessageId": "msg-2", "interrupt": False},
        {"appMessageId": "msg-3", "interrupt": True},
    ]
    summary = handler.summary()
    assert summary["stopped_by"]["rule"] == {"rule": "relative_gap", "relative_gap": 0.01}
    assert summary["stopped_by"]["app_message_id"] == "msg-3"
    assert [row[1] for row in summary["series"]["points"]] == [5906.0, 5722.0, 5680.0]
    assert request["solver"]["callbacks"] == ["INTSOL", "GLOBALLOG"]
    # Each event reaches the adapter once: the progress lines and the stop, on the progress logger.
    progress = [r for r in caplog.records if r.name == p.PROGRESS_LOGGER]
    progress_lines = [r.getMessage() for r in progress if "solver progress" in r.getMessage()]
    assert len(progress_lines) == 3
    assert "best solution 5680, best bound 5634.8, gap 0.796%" in progress_lines[-1]
    assert (
        "stopping the solve (interruptSolve=true), stop rule relative_gap"
        in progress[-1].getMessage()
    )
    assert len(progress) == 4
