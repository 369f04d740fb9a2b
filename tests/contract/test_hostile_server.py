"""A hostile server: answers far too large, answers that trickle or never come, frames far over
any sane size and bursts of malformed frames. Each ends in a bounded time with a clear error (or,
where nothing is lost, with the job followed to its end); memory stays bounded; other jobs on
the same socket are not disturbed. The emulator on 127.0.0.1 port 0, both drivers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import tracemalloc
from collections.abc import Iterator

import pytest
from support import emulator_settings

from airflow_insight.emulator import Emulator, EmulatorConfig
from airflow_insight.emulator import faults as f
from airflow_insight.exceptions import InsightTimeout, RemoteProtocolError
from airflow_insight.protocol.events import RunLogLines
from airflow_insight.protocol.inbox import MAX_MESSAGE_BYTES
from airflow_insight.protocol.outcome import JobOutcome
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport import async_handshake, sync_handshake
from airflow_insight.transport.async_driver import AsyncJobFollower
from airflow_insight.transport.bodies import MAX_JSON_BODY_BYTES
from airflow_insight.transport.driving import DriverEvent
from airflow_insight.transport.rest import InsightRestClient
from airflow_insight.transport.retry import RetryPolicy
from airflow_insight.transport.sync_driver import SyncJobFollower
from contract.test_driver_contract import BASE_SCRIPT, FAST_FOLLOWER, _request

pytestmark = pytest.mark.timeout(120)

JOB_PATHS = "/api/compute-jobs/*"
#: Short enough that a test ends quickly, long enough for a loaded machine's honest answer.
READ_TIMEOUT_SECONDS = 1.0


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """Pongs may wait while a driver is busy with a hostile answer."""
    return EmulatorConfig(ping_interval_seconds=0.1, pong_timeout_seconds=5.0)


@pytest.fixture
def settings(emulator: Emulator) -> ConnectionSettings:
    """Short timeouts, so an answer that never comes ends the test quickly."""
    return emulator_settings(
        emulator, connect_timeout_seconds=1.0, read_timeout_seconds=READ_TIMEOUT_SECONDS
    )


@pytest.fixture
def rest(settings: ConnectionSettings) -> Iterator[InsightRestClient]:
    """One retry at the most: a hostile answer must end in a bounded time."""
    policy = RetryPolicy(max_attempts=2, base_delay_seconds=0.01, max_delay_seconds=0.05)
    with InsightRestClient(settings, retry_policy=policy) as client:
        yield client


# --------------------------------------------------------------------------------- REST


def test_a_huge_rest_body_is_cut_off_at_the_limit(
    emulator: Emulator, rest: InsightRestClient
) -> None:
    rest.submit_job(_request("huge-body"))
    emulator.inject(f.HugeBody("GET", JOB_PATHS, megabytes=300))
    tracemalloc.start()
    try:
        with pytest.raises(RemoteProtocolError, match="larger than 16 MiB"):
            rest.get_job("huge-body")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # What was read before the cut, not the 300 MB the server offered.
    assert peak < 3 * MAX_JSON_BODY_BYTES, f"peak {peak / 2**20:.0f} MiB"
    assert [e.data["fault"] for e in emulator.record.of_kind("fault")] == ["huge-body"]


def test_a_trickling_answer_ends_at_the_total_deadline(
    emulator: Emulator, rest: InsightRestClient
) -> None:
    rest.submit_job(_request("trickle"))
    # A byte every 50 ms: every read gets one well within the read timeout.
    emulator.inject(f.Trickle("GET", JOB_PATHS, seconds=0.05))
    with pytest.raises(InsightTimeout, match="did not arrive in full within 3 s"):
        rest.get_job("trickle")


def test_an_answer_that_never_comes_ends_at_the_read_timeout(
    emulator: Emulator, rest: InsightRestClient
) -> None:
    rest.submit_job(_request("silent"))
    emulator.inject(f.Delay("GET", JOB_PATHS, seconds=3600.0))
    with pytest.raises(InsightTimeout):
        rest.get_job("silent")


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_handshake_never_answered_ends_at_the_connect_timeout(
    driver: str, emulator: Emulator, settings: ConnectionSettings, rest: InsightRestClient
) -> None:
    token = rest.current_token().value
    emulator.inject(f.Delay("GET", "/api/compute-job-messages", seconds=3600.0))
    with pytest.raises(InsightTimeout):
        if driver == "sync":
            sync_handshake.open_socket(settings, token)
        else:
            asyncio.run(async_handshake.open_socket(settings, token))


# --------------------------------------------------------------------------------- socket

#: Two jobs on one socket: the victim of the fault and a bystander.
SCRIPT = dataclasses.replace(BASE_SCRIPT, log_lines=60, lines_per_second=150.0)


def _follow_two(
    driver: str, settings: ConnectionSettings, rest: InsightRestClient, jobs: tuple[str, str]
) -> tuple[dict[str, JobOutcome | None], dict[str, list[str]]]:
    """Follow both jobs on one socket of ``driver``; their outcomes and forwarded lines."""
    lines: dict[str, list[str]] = {job: [] for job in jobs}

    def sink(event: DriverEvent) -> None:
        if isinstance(event, RunLogLines):
            lines[event.job_id].extend(event.lines)

    outcomes: dict[str, JobOutcome | None] = {}
    if driver == "sync":
        with SyncJobFollower(settings, rest, on_event=sink, config=FAST_FOLLOWER) as follower:
            follower.open()
            for job in jobs:
                follower.submit(_request(job))
            for job in jobs:
                outcomes[job] = follower.wait(job, timeout_seconds=60.0)
        return outcomes, lines

    async def main() -> None:
        async with AsyncJobFollower(
            settings, rest, on_event=sink, config=FAST_FOLLOWER
        ) as follower:
            await follower.open()
            for job in jobs:
                await follower.submit(_request(job))
            for job in jobs:
                outcomes[job] = await follower.wait(job, timeout_seconds=60.0)

    asyncio.run(main())
    return outcomes, lines


def _assert_both_followed(
    emulator: Emulator,
    outcomes: dict[str, JobOutcome | None],
    lines: dict[str, list[str]],
) -> None:
    for job, outcome in outcomes.items():
        assert outcome is not None and outcome.status == "COMPLETED", (job, outcome)
        assert lines[job] == emulator.run_log(job), job


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_frame_far_over_the_cap_costs_a_reconnect_and_no_line(
    driver: str, emulator: Emulator, settings: ConnectionSettings, rest: InsightRestClient
) -> None:
    victim, bystander = f"huge-frame-{driver}", f"bystander-{driver}"
    emulator.add_script("*", SCRIPT)
    megabytes = 2 * MAX_MESSAGE_BYTES / 2**20
    emulator.inject(f.HugeFrame(megabytes, job_id=victim))
    outcomes, lines = _follow_two(driver, settings, rest, (victim, bystander))
    _assert_both_followed(emulator, outcomes, lines)
    assert [e.data["fault"] for e in emulator.record.of_kind("fault")] == ["huge-frame"]
    # The client refused the frame and closed that socket; a new one carried both jobs on.
    assert len(emulator.record.of_kind("ws_open")) >= 2


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_a_burst_of_malformed_frames_for_one_job_leaves_the_other_alone(
    driver: str, emulator: Emulator, settings: ConnectionSettings, rest: InsightRestClient
) -> None:
    victim, bystander = f"malformed-{driver}", f"bystander-{driver}"
    emulator.add_script("*", SCRIPT)
    emulator.inject(f.MalformedJson(job_id=victim, times=5, burst=200))
    outcomes, lines = _follow_two(driver, settings, rest, (victim, bystander))
    _assert_both_followed(emulator, outcomes, lines)
    assert len(emulator.record.of_kind("fault")) == 5
    # Rejected one by one: no reconnect, the bystander's lines came live on the one socket.
    assert len(emulator.record.of_kind("ws_open")) == 1
