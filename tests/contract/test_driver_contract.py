"""One contract for every driver: right end state, every line once and in order, no secrets.

Each scenario arms §A9 faults on a fresh emulator, lets the driver follow one job through them,
and compares what the driver forwarded with the emulator's own full run log.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from support import assert_no_secrets, assert_pings_answered

from airflow_insight.emulator import (
    Emulator,
    EmulatorConfig,
    JobScript,
    ScriptedAppMessage,
)
from airflow_insight.emulator import faults as f
from airflow_insight.exceptions import InsightError, PermissionDenied, ServerError, SubmitRejected
from airflow_insight.protocol.follower import FollowerConfig
from airflow_insight.protocol.outcome import JobOutcome
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport.rest import InsightRestClient

TIMEOUT_SECONDS = 20.0

#: A short job: 30 lines in batches of 3 over about 0.3 s, so faults hit it mid-run.
BASE_SCRIPT = JobScript(
    name="contract",
    queued_seconds=0.02,
    status_step_seconds=0.02,
    log_lines=30,
    lines_per_second=100.0,
    batch_size=3,
    completing_seconds=0.02,
    cancel_seconds=0.02,
)

FAST_FOLLOWER = FollowerConfig(
    silence_limit_seconds=0.5,
    reconnect_initial_delay_seconds=0.02,
    reconnect_max_delay_seconds=0.2,
)


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One fault setup and what the driver must end with."""

    name: str
    faults: tuple[f.Fault, ...] = ()
    #: Faults armed once the first socket is open.
    later: tuple[f.Fault, ...] = ()
    script: JobScript = BASE_SCRIPT
    emulator: dict[str, Any] = dataclasses.field(default_factory=dict)
    status: str = "COMPLETED"
    model_status: str | None = "OK"
    execution_attempts: int = 1
    raises: type[InsightError] | None = None
    #: How many sockets the emulator must have seen opened: (at least, at most).
    sockets: tuple[int, int | None] = (1, None)
    #: Whether the final run log must have been fetched over REST (None: either way).
    run_log_fetched: bool | None = None


SCENARIOS = [
    # RUNLOG_COMPLETED counts every line the socket brought: no REST run-log fetch.
    Scenario("clean", sockets=(1, 1), run_log_fetched=False),
    Scenario(
        "no-runlog-completed",
        emulator={"send_runlog_completed": False},
        sockets=(1, 1),
        run_log_fetched=True,
    ),
    Scenario("drop-after-5-messages", (f.DropSocket(after_messages=5),), sockets=(2, None)),
    Scenario(
        "drop-with-close-frame",
        (f.DropSocket(after_messages=4, close_code=1011),),
        sockets=(2, None),
    ),
    Scenario("drop-repeatedly", (f.DropSocket(after_messages=3, times=6),), sockets=(4, None)),
    Scenario("drop-at-executing", (f.DropSocket(status="EXECUTING"),), sockets=(2, None)),
    Scenario("drop-at-completed", (f.DropSocket(status="COMPLETED"),)),
    Scenario("refuse-handshake-401", (f.RefuseHandshake(401),)),
    Scenario("refuse-handshake-503-x3", (f.RefuseHandshake(503, times=3),)),
    Scenario("socket-never-opens", (f.RefuseHandshake(503, times=None),), sockets=(0, 0)),
    Scenario(
        "missed-pong",
        (f.IgnorePongs(),),
        script=dataclasses.replace(BASE_SCRIPT, lines_per_second=50.0),
        emulator={"pong_timeout_seconds": 0.25},
        sockets=(2, None),
    ),
    Scenario("socket-token-expiry", (f.TokenExpiry(seconds=0.1),), sockets=(2, None)),
    Scenario("expire-all-tokens", later=(f.ExpireTokens(),)),
    Scenario("http-401-on-submit", (f.HttpError("POST", "/api/compute-jobs", 401),)),
    Scenario(
        "http-403-on-submit",
        (f.HttpError("POST", "/api/compute-jobs", 403),),
        raises=PermissionDenied,
    ),
    Scenario(
        "http-409-on-submit",
        (f.HttpError("POST", "/api/compute-jobs", 409),),
        raises=SubmitRejected,
    ),
    Scenario(
        "http-422-on-submit",
        (f.HttpError("POST", "/api/compute-jobs", 422),),
        raises=SubmitRejected,
    ),
    Scenario(
        "http-429-retry-after",
        (f.HttpError("POST", "/api/compute-jobs", 429, retry_after_seconds=0.05),),
    ),
    Scenario(
        "http-500-on-submit", (f.HttpError("POST", "/api/compute-jobs", 500),), raises=ServerError
    ),
    Scenario("http-503-x2-on-submit", (f.HttpError("POST", "/api/compute-jobs", 503, times=2),)),
    Scenario(
        "http-errors-while-socket-down",
        (
            f.DropSocket(after_messages=4),
            f.HttpError("GET", "/api/compute-jobs/*", 503, times=2, retry_after_seconds=0.01),
            f.HttpError("GET", "/api/compute-jobs/*", 500, times=2),
        ),
        # Every reconnect is refused: the job is followed over REST through its errors.
        later=(f.RefuseHandshake(503, times=None),),
    ),
    Scenario(
        "http-500-on-run-log",
        (f.HttpError("GET", "/api/scenarios/*/run-log", 500),),
        # Without RUNLOG_COMPLETED the client must fetch the log, and meets the 500.
        emulator={"send_runlog_completed": False},
        run_log_fetched=True,
    ),
    Scenario("delayed-submit", (f.Delay("POST", "/api/compute-jobs", 0.3),)),
    Scenario("delayed-reconcile", (f.DropSocket(after_messages=4), f.Delay("GET", "*", 0.2))),
    Scenario("malformed-json", (f.MalformedJson(times=3),)),
    Scenario("unknown-message-type", (f.UnknownMessageType(times=3),)),
    Scenario("message-for-unknown-job", (f.UnknownJobMessage(times=3),)),
    Scenario("missing-execution-attempts", (f.MissingFields(("executionAttempts",), times=5),)),
    Scenario(
        "missing-run-log-lines",
        (f.MissingFields(("lines",), message_type="RUNLOG_UPDATED", times=2),),
    ),
    Scenario(
        "missing-status",
        (f.MissingFields(("status",), message_type="JOB_STATUS_UPDATED", times=2),),
    ),
    Scenario("extra-fields", (f.ExtraFields({"futureField": {"a": 1}}, times=None),)),
    Scenario("legacy-fields", (f.LegacyFields(),)),
    Scenario("duplicate-run-log", (f.DuplicateRunLog(times=4),)),
    Scenario("out-of-order-run-log", (f.OutOfOrderRunLog(times=4),)),
    Scenario("requeue", (f.Requeue(after_lines=12),), execution_attempts=2),
    Scenario("json-pings", emulator={"json_pings": True, "ping_interval_seconds": 0.02}),
    Scenario("finish-failed", (f.FinishWith("FAILED"),), status="FAILED", model_status=None),
    Scenario(
        "finish-cancelled", (f.FinishWith("CANCELLED"),), status="CANCELLED", model_status=None
    ),
    Scenario(
        "finish-model-error",
        (f.FinishWith("COMPLETED", model_status="ERROR"),),
        model_status="ERROR",
    ),
]


def _assert_no_secrets(
    emulator: Emulator, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    captured = capsys.readouterr()
    assert_no_secrets(emulator, caplog.text, captured.out, captured.err)


def _arm_when_open(emulator: Emulator, later: tuple[f.Fault, ...]) -> None:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not emulator.record.of_kind("ws_open") and time.monotonic() < deadline:
        time.sleep(0.002)
    emulator.inject(*later)


def _run(
    driver: ModuleType,
    emulator: Emulator,
    settings: ConnectionSettings,
    rest: InsightRestClient,
    scenario: Scenario,
) -> tuple[Callable[[], JobOutcome], list[str], str]:
    job_id = f"contract-{scenario.name}"
    emulator.add_script("*", scenario.script)
    emulator.inject(*scenario.faults)
    if scenario.later:
        threading.Thread(
            target=_arm_when_open, args=(emulator, scenario.later), daemon=True
        ).start()
    lines: list[str] = []
    request = {"id": job_id, "computeJobType": "SOLVER", "runLogMessages": True}

    def follow() -> JobOutcome:
        outcome: JobOutcome = driver.follow_job(
            settings,
            rest,
            request,
            None,
            config=FAST_FOLLOWER,
            on_line=lines.append,
            timeout_seconds=TIMEOUT_SECONDS,
        )
        return outcome

    return follow, lines, job_id


@pytest.fixture(params=SCENARIOS, ids=[s.name for s in SCENARIOS])
def scenario(request: pytest.FixtureRequest) -> Scenario:
    """One fault scenario."""
    chosen: Scenario = request.param
    return chosen


@pytest.fixture
def emulator_config(scenario: Scenario) -> EmulatorConfig:
    """The suite's tiny intervals plus the scenario's own settings."""
    config = EmulatorConfig(ping_interval_seconds=0.05, pong_timeout_seconds=2.0)
    return dataclasses.replace(config, **scenario.emulator)


def test_fault_scenario(
    driver: ModuleType,
    scenario: Scenario,
    emulator: Emulator,
    settings: ConnectionSettings,
    rest: InsightRestClient,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level("DEBUG")
    follow, lines, job_id = _run(driver, emulator, settings, rest, scenario)
    if scenario.raises is not None:
        with pytest.raises(scenario.raises):
            follow()
        assert lines == []
        _assert_no_secrets(emulator, caplog, capsys)
        return
    outcome = follow()
    assert outcome.compute_job_id == job_id
    assert outcome.status == scenario.status
    assert outcome.model_status == scenario.model_status
    assert outcome.execution_attempts == scenario.execution_attempts
    full_log = emulator.run_log(job_id)
    assert full_log, "the emulator wrote no run log"
    assert lines == full_log
    assert outcome.last_run_log_line == len(full_log) - 1
    assert outcome.run_log_tail == tuple(full_log[-len(outcome.run_log_tail) :])
    opened = len(emulator.record.of_kind("ws_open"))
    least, most = scenario.sockets
    assert opened >= least
    assert most is None or opened <= most
    if scenario.run_log_fetched is not None:
        path = f"/api/scenarios/{emulator.hub.jobs[job_id].scenario_id}/run-log"
        assert bool(emulator.record.requests("GET", path)) is scenario.run_log_fetched
    _assert_no_secrets(emulator, caplog, capsys)


def _request(job_id: str) -> dict[str, Any]:
    return {"id": job_id, "computeJobType": "SOLVER", "runLogMessages": True}


@pytest.mark.parametrize("scenario", [Scenario("connection-id")], ids=["connection-id"])
def test_submit_carries_the_connection_id(
    driver: ModuleType, emulator: Emulator, settings: ConnectionSettings, rest: InsightRestClient
) -> None:
    lines: list[str] = []
    driver.follow_job(
        settings,
        rest,
        _request("contract-cid"),
        None,
        config=FAST_FOLLOWER,
        on_line=lines.append,
        timeout_seconds=TIMEOUT_SECONDS,
    )
    (post,) = emulator.record.requests("POST", "/api/compute-jobs")
    (opened,) = emulator.record.of_kind("ws_open")
    assert post.data["headers"]["connection-id"] == opened.connection_id
    assert lines == emulator.run_log("contract-cid")


#: Silent for 4 s, past a 3 s token: the refresh is due after 2 s, which leaves a loaded 2-core
#: machine a second to mint the new token and send UPDATE_TOKEN before the old one ends.
SILENT = dataclasses.replace(
    BASE_SCRIPT, name="silent", queued_seconds=4.0, log_lines=2, batch_size=2
)


@pytest.mark.parametrize(
    "scenario",
    [Scenario("silent", script=SILENT, emulator={"token_max_age_cap_seconds": 3.0})],
    ids=["silent-job-short-token"],
)
def test_update_token_keeps_a_silent_socket_open(
    driver: ModuleType,
    scenario: Scenario,
    emulator: Emulator,
    settings: ConnectionSettings,
    rest: InsightRestClient,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level("DEBUG")
    emulator.add_script("*", scenario.script)
    lines: list[str] = []
    outcome = driver.follow_job(
        settings,
        rest,
        _request("contract-silent"),
        None,
        config=dataclasses.replace(FAST_FOLLOWER, silence_limit_seconds=5.0),
        on_line=lines.append,
        timeout_seconds=TIMEOUT_SECONDS,
    )
    assert outcome.status == "COMPLETED"
    assert lines == emulator.run_log("contract-silent")
    updates = emulator.record.of_kind("update_token")
    assert updates, "no UPDATE_TOKEN was sent although the job outlived the token"
    assert all(update.data["valid"] for update in updates)
    # The one socket survived the first token's expiry: no reconnect was needed.
    assert len(emulator.record.of_kind("ws_open")) == 1
    _assert_no_secrets(emulator, caplog, capsys)


# The flood outlasts the pong limit, so a driver that stops answering pings while it forwards
# lines loses its socket; the limit leaves room for a loaded 2-core machine.
FLOOD = JobScript(
    name="flood",
    queued_seconds=0.01,
    log_lines=40_000,
    lines_per_second=40_000.0,
    batch_size=200,
    completing_seconds=0.01,
)
#: A sink slower than the server (150 ms per 200-line batch: a loaded machine formatting a log
#: record per line): the inbox fills. A driver must keep reading the socket and answering pings
#: while its sink drains the backlog: one that forwards the whole backlog without giving the
#: socket a turn, or reads it only between batches, leaves pings unanswered until the server
#: closes the socket for a missed pong.
SLOW_SINK_FLOOD = dataclasses.replace(FLOOD, log_lines=6_000, lines_per_second=20_000.0)
SLOW_SINK_SECONDS_PER_LINE = 0.00075


class _BoundedLog(logging.Handler):
    """Formats every record (the work a real sink does) but keeps only the last few, so a
    failure prints a short excerpt instead of every captured line."""

    def __init__(self, keep: int = 20) -> None:
        super().__init__()
        self.count = 0
        self.last: collections.deque[str] = collections.deque(maxlen=keep)

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        self.last.append(self.format(record))


def _flood_logger(name: str) -> tuple[logging.Logger, _BoundedLog]:
    logger = logging.getLogger(f"tests.contract.{name}")
    logger.propagate = False  # Never into caplog or the terminal report: see _BoundedLog.
    logger.setLevel(logging.INFO)
    handler = _BoundedLog()
    logger.handlers[:] = [handler]
    return logger, handler


def _compare_lines(got: list[str], want: list[str]) -> str | None:
    """None when equal, else a short description of the first difference."""
    if got == want:
        return None
    index = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), None)
    if index is None:
        index = min(len(got), len(want))
    return (
        f"{len(got)} lines forwarded, {len(want)} expected; first difference at line {index}:"
        f" got {got[index : index + 3]!r}, expected {want[index : index + 3]!r}"
    )


def _flood_verdict(emulator: Emulator, handler: _BoundedLog) -> str:
    closes = [entry.data for entry in emulator.record.of_kind("ws_close")]
    return f"closes {closes[:3]}; last log lines: {list(handler.last)[-5:]}"


@pytest.mark.parametrize(
    ("scenario", "script", "seconds_per_line"),
    [
        (
            Scenario(
                "flood", emulator={"ping_interval_seconds": 0.02, "pong_timeout_seconds": 0.8}
            ),
            FLOOD,
            0.0,
        ),
        (
            Scenario(
                "slow-sink", emulator={"ping_interval_seconds": 0.02, "pong_timeout_seconds": 0.8}
            ),
            SLOW_SINK_FLOOD,
            SLOW_SINK_SECONDS_PER_LINE,
        ),
    ],
    ids=["flood", "slow-sink"],
)
def test_pings_are_answered_during_a_flood(
    driver: ModuleType,
    scenario: Scenario,
    script: JobScript,
    seconds_per_line: float,
    emulator: Emulator,
    settings: ConnectionSettings,
    rest: InsightRestClient,
) -> None:
    emulator.add_script("*", script)
    lines: list[str] = []
    flood_log, handler = _flood_logger(scenario.name)
    batch_pause = seconds_per_line * script.batch_size

    def forward(line: str) -> None:
        # A real sink formats a log record per line; do the same amount of work here.
        flood_log.info("run log | %s", line)
        lines.append(line)
        if batch_pause and len(lines) % script.batch_size == 0:
            time.sleep(batch_pause)  # Holds the loop, as a slow logger does.

    job_id = f"contract-{scenario.name}"
    outcome = driver.follow_job(
        settings,
        rest,
        _request(job_id),
        None,
        config=FAST_FOLLOWER,
        on_line=forward,
        timeout_seconds=60.0,
    )
    assert outcome.status == "COMPLETED"
    difference = _compare_lines(lines, emulator.run_log(job_id))
    assert difference is None, difference
    assert len(lines) == script.log_lines == handler.count
    assert_pings_answered(emulator)
    sockets = len(emulator.record.of_kind("ws_open"))
    assert sockets == 1, (
        f"the socket was closed during the flood: {_flood_verdict(emulator, handler)}"
    )


#: An APP_MESSAGE in the middle of a slow-sink flood: when it is written, thousands of lines wait
#: in the driver's inbox (the sink drains them in about 3 s), and the server gives the answer
#: only a short limit. A driver that answers in arrival order, behind those lines, lets the limit
#: run out; the core says which frames need an immediate reply and both drivers answer those as
#: soon as they are read, as pings are.
CALLBACK_IN_FLOOD = dataclasses.replace(
    SLOW_SINK_FLOOD,
    log_lines=5_000,
    app_messages=(ScriptedAppMessage(after_lines=4_000),),
    app_message_timeout_seconds=2.0,
)


@pytest.mark.parametrize(
    "scenario",
    [Scenario("callback-in-flood", script=CALLBACK_IN_FLOOD)],
    ids=["callback-in-flood"],
)
def test_an_app_message_is_answered_ahead_of_a_run_log_backlog(
    driver: ModuleType,
    scenario: Scenario,
    emulator: Emulator,
    settings: ConnectionSettings,
    rest: InsightRestClient,
) -> None:
    script = scenario.script
    emulator.add_script("*", script)
    lines: list[str] = []
    batch_pause = SLOW_SINK_SECONDS_PER_LINE * script.batch_size

    def forward(line: str) -> None:
        lines.append(line)
        if len(lines) % script.batch_size == 0:
            time.sleep(batch_pause)  # Holds the loop, as a slow logger does.

    job_id = f"contract-{scenario.name}"
    outcome = driver.follow_job(
        settings,
        rest,
        _request(job_id),
        None,
        config=FAST_FOLLOWER,
        on_line=forward,
        timeout_seconds=60.0,
    )
    assert outcome.status == "COMPLETED"
    [exchange] = emulator.record.app_message_exchanges(job_id)
    # The server's own limit is the judge: no wall-clock assertion of ours.
    assert exchange["timedOutAt"] is None, f"the answer came too late: {exchange}"
    assert exchange["answeredAt"] is not None
    assert exchange["interruptSolve"] is False
    assert lines == emulator.run_log(job_id)
    assert len(lines) == script.log_lines


SLOWER = dataclasses.replace(BASE_SCRIPT, name="slower", log_lines=40, lines_per_second=60.0)


@pytest.mark.parametrize("scenario", [Scenario("reattach", script=SLOWER)], ids=["reattach"])
def test_reattach_forwards_only_later_lines(
    driver: ModuleType,
    scenario: Scenario,
    emulator: Emulator,
    settings: ConnectionSettings,
    rest: InsightRestClient,
) -> None:
    emulator.add_script("*", scenario.script)
    job_id = "contract-reattach"
    rest.submit_job(_request(job_id), None, None)
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while len(emulator.run_log(job_id)) < 10:
        assert time.monotonic() < deadline, "the job wrote no lines"
        time.sleep(0.01)
    lines: list[str] = []
    outcome = driver.reattach(
        settings,
        rest,
        job_id,
        execution_attempts=1,
        last_run_log_line=4,
        config=FAST_FOLLOWER,
        on_line=lines.append,
        timeout_seconds=TIMEOUT_SECONDS,
    )
    assert outcome.status == "COMPLETED"
    full_log = emulator.run_log(job_id)
    assert len(full_log) == SLOWER.log_lines
    assert lines == full_log[5:]
    (subscribe, *_) = emulator.record.of_kind("subscribe")
    assert subscribe.data["lastRunLogLine"] == 4
