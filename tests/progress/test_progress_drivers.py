"""SolverProgress wired into both drivers' ``app_messages=``, against the emulator on 127.0.0.1:0.

A scripted job sends APP_MESSAGEs on its way through its run log (the emulator's
``ScriptedAppMessage``) and waits for each answer, as a real solve does; ``interruptSolve`` ends
it there. The test reads the emulator's record of what it sent and the answers it received.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support import emulator_settings

from airflow_insight import progress as p
from airflow_insight.emulator import Emulator, EmulatorConfig
from airflow_insight.emulator.callbacks import INTERRUPTED_LINE
from airflow_insight.emulator.scripts import JobScript, ScriptedAppMessage
from airflow_insight.protocol.follower import FollowerConfig
from airflow_insight.protocol.outcome import JobOutcome
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport.async_driver import AsyncJobFollower
from airflow_insight.transport.rest import InsightRestClient
from airflow_insight.transport.sync_driver import SyncJobFollower

# Room for a loaded 2-core machine; nothing here is a speed assertion.
LIMIT_SECONDS = 60.0


def figures(best: float, bound: float, solutions: int) -> dict[str, float]:
    return {"MIPBESTOBJVAL": best, "BESTBOUND": bound, "MIPSOLS": solutions, "OBJSENSE": 1}


# Gap 6.8 %, then 2.1 %, then 0.796 %: the third crosses the 1 % rule, so the fourth never comes.
CALLBACKS = (
    ScriptedAppMessage(2, "GLOBALLOG", figures(5906.0, 5503.2, 2)),
    ScriptedAppMessage(4, "INTSOL", figures(5722.0, 5602.5, 5), with_file=True),
    ScriptedAppMessage(6, "GLOBALLOG", figures(5680.0, 5634.8, 16)),
    ScriptedAppMessage(8, "GLOBALLOG", figures(5680.0, 5640.0, 16)),
)
SOLVE = JobScript(
    name="progress", log_lines=12, lines_per_second=100.0, batch_size=1, app_messages=CALLBACKS
)


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """Pings slow enough that a solve's callbacks, not the keep-alive, fill the socket."""
    return EmulatorConfig(ping_interval_seconds=0.5, pong_timeout_seconds=30.0)


@pytest.fixture
def emulator(emulator_config: EmulatorConfig) -> Iterator[Emulator]:
    with Emulator(emulator_config) as running:
        running.add_script("*", SOLVE)
        yield running


@pytest.fixture
def settings(emulator: Emulator) -> ConnectionSettings:
    return emulator_settings(emulator, connect_timeout_seconds=5.0, read_timeout_seconds=10.0)


def log_event(event: Any) -> None:
    """What an adapter does with each event: progress on its own logger (``logger_name``)."""
    name = getattr(event, "logger_name", "tests.progress.driver")
    logging.getLogger(name).log(event.log_level, event.describe())


def follow_sync(
    settings: ConnectionSettings, rest: InsightRestClient, request: dict[str, Any], handler: Any
) -> JobOutcome | None:
    with SyncJobFollower(settings, rest, config=FollowerConfig(), on_event=log_event) as driver:
        driver.open()
        driver.submit(request, None, app_messages=handler)
        return driver.wait(request["id"], timeout_seconds=LIMIT_SECONDS)


def follow_async(
    settings: ConnectionSettings, rest: InsightRestClient, request: dict[str, Any], handler: Any
) -> JobOutcome | None:
    async def main() -> JobOutcome | None:
        async with AsyncJobFollower(
            settings, rest, config=FollowerConfig(), on_event=log_event
        ) as driver:
            await driver.open()
            await driver.submit(request, None, app_messages=handler)
            return await driver.wait(request["id"], timeout_seconds=LIMIT_SECONDS)

    return asyncio.run(main())


Follow = Callable[[ConnectionSettings, InsightRestClient, dict[str, Any], Any], "JobOutcome | None"]


def answers_received(emulator: Emulator, job_id: str) -> list[dict[str, Any]]:
    return [
        entry.data
        for entry in emulator.record.of_kind("app_message_response")
        if entry.compute_job_id == job_id
    ]


def app_messages_sent(emulator: Emulator, job_id: str) -> list[dict[str, Any]]:
    return [
        message
        for message in emulator.record.messages_sent(compute_job_id=job_id)
        if message["messageType"] == "APP_MESSAGE"
    ]


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
    # What the operator does with solver_progress=True, stop_rules=[StopAtGap(0.01)].
    options = p.ProgressOptions.from_arguments(True, [p.StopAtGap(0.01)])
    assert options is not None
    request = options.job_request(
        {"id": job_id, "computeJobType": "SOLVER", "runLogMessages": True, "solver": {}}
    )
    handler = options.handler()

    outcome = follow(settings, rest, request, handler)

    # The solve stopped where the answer asked it to: a stopped solve with an incumbent.
    assert outcome is not None
    assert (outcome.status, outcome.model_status) == ("COMPLETED", "OK")
    sent = app_messages_sent(emulator, job_id)
    assert [message["messagePayload"]["appMessageType"] for message in sent] == [
        "GLOBALLOG",
        "INTSOL",
        "GLOBALLOG",
    ]
    answers = answers_received(emulator, job_id)
    assert [(a["appMessageId"], a["interrupt"], a["matched"]) for a in answers] == [
        (message["messagePayload"]["appMessageId"], interrupt, True)
        for message, interrupt in zip(sent, [False, False, True], strict=True)
    ]
    log = emulator.run_log(job_id)
    assert log[-1] == INTERRUPTED_LINE
    assert len(log) == 7  # 6 lines, then the interruption: lines 7-12 were never written
    summary = handler.summary()
    assert summary["stopped_early"] is True
    assert summary["stopped_by"]["rule"] == {"rule": "relative_gap", "relative_gap": 0.01}
    assert summary["stopped_by"]["app_message_id"] == sent[2]["messagePayload"]["appMessageId"]
    assert [row[1] for row in summary["series"]["points"]] == [5906.0, 5722.0, 5680.0]
    assert summary["latest_solution_file"] == sent[1]["messagePayload"]["appMessageFile"]
    assert request["solver"]["callbacks"] == ["INTSOL", "GLOBALLOG", "LPLOG", "BARLOG", "GAPNOTIFY"]
    assert request["solver"]["controls"] == {"XPRS_MIPRELGAPNOTIFY": 0.01}
    # Each event reaches the adapter once: the progress lines and the stop, on the progress logger.
    progress = [r for r in caplog.records if r.name == p.PROGRESS_LOGGER]
    assert progress[0].getMessage().startswith(f"Solver progress of Insight compute job {job_id}")
    progress_lines = [" ".join(r.getMessage().split()) for r in progress[1:-1]]
    assert len(progress_lines) == 3
    assert "best 5680 bound 5634.8 gap 0.80%" in progress_lines[-1]
    assert "stopping the solve (interruptSolve=true), stop rule relative_gap" in (
        progress[-1].getMessage()
    )
    assert len(progress) == 5
