"""InsightJobTrigger: run() on a real event loop against the emulator on 127.0.0.1 port 0."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import time
from typing import Any

import pytest
from airflow.triggers.base import TriggerEvent
from support import assert_no_secrets, connection_json
from support.trigger_events import outcome_from_event
from trigger_support import collect, forwarded, run_log, submit, until

from airflow_insight.emulator import DEMO_CLIENT_SECRET, Emulator, EmulatorConfig
from airflow_insight.emulator import faults as f
from airflow_insight.exceptions import ConfigurationError, InsightTimeout, JobFailed
from airflow_insight.hooks.insight import InsightHook
from airflow_insight.protocol.outcome import JobOutcome
from airflow_insight.transport.socket_hub import SocketHub
from airflow_insight.triggers.insight import CLASSPATH, InsightJobTrigger

#: What the triggerer passes when a user marks the task failed/success or clears it.
USER_ACTION = "__airflow_user_action__"
_submit, _forwarded, _run_log, _collect, _until = submit, forwarded, run_log, collect, until


def _trigger(job_id: str, **changes: Any) -> InsightJobTrigger:
    kwargs: dict[str, Any] = {
        "insight_conn_id": "insight_default",
        "compute_job_id": job_id,
        "silence_limit_seconds": 0.5,
    }
    kwargs.update(changes)
    return InsightJobTrigger(**kwargs)


def _only_event(events: list[TriggerEvent]) -> dict[str, Any]:
    assert len(events) == 1, events
    payload: dict[str, Any] = events[0].payload
    json.dumps(payload)  # JSON-safe
    return payload


def _run_log_gets(emulator: Emulator, job_id: str) -> int:
    """How many times the job's run log was read over REST."""
    path = f"/api/scenarios/{emulator.hub.jobs[job_id].scenario_id}/run-log"
    return len(emulator.record.requests("GET", path))


# --------------------------------------------------------------------------------- kwargs


#: Every __init__ argument with a value that is not its default (so a dropped one shows).
_ARGUMENTS: dict[str, Any] = {
    "insight_conn_id": "insight_default",
    "compute_job_id": "ser-1",
    "execution_attempts": 2,
    "last_run_log_line": 17,
    "accepted_model_statuses": ["SOLVED", "OK"],
    "silence_limit_seconds": 0.5,
    "end_by": 4_000_000_000.0,
    "cancel_on_kill": False,
    "unreachable_limit_seconds": 120.0,
    "progress": {
        "callbacks": ["INTSOL", "GAPNOTIFY"],
        "stop_rules": [{"rule": "relative_gap", "relative_gap": 0.02}],
        "series_limit": 50,
    },
    "end": {
        "xcoms": {"compute_job_id": "ser-1"},
        "results_path": "file:///results/ser-1.zip",
        "solution_path": None,
        "progress_plot_path": None,
        "with_progress": True,
        "target_gap": 0.02,
        "delete": True,
    },
}


def test_serialize_mirrors_init_and_carries_no_secret(emulator: Emulator) -> None:
    """Built from literal arguments (not from trigger_kwargs, which serialize also calls), run
    against the emulator so the trigger has read the connection's secret, then serialized: the
    kwargs name every __init__ argument with its value, JSON-safe, rebuild an equal trigger, and
    hold neither the secret nor a token the trigger really holds."""
    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(InsightJobTrigger).parameters.items()
    }
    assert set(_ARGUMENTS) == set(defaults), "a new argument needs a test value here"
    assert all(_ARGUMENTS[name] != default for name, default in defaults.items())
    _submit(emulator, "ser-1")
    trigger = InsightJobTrigger(**_ARGUMENTS)
    payload = _only_event(asyncio.run(_collect(trigger)))
    assert outcome_from_event(payload).succeeded(["OK"])
    # The check below can see a secret: the trigger holds it (and the hub minted a token).
    assert trigger._hook._settings is not None
    assert trigger._hook._settings.client_secret == DEMO_CLIENT_SECRET
    classpath, kwargs = trigger.serialize()
    assert classpath == CLASSPATH
    stored = json.loads(json.dumps(kwargs))  # as Airflow stores them
    assert stored == {**_ARGUMENTS, "accepted_model_statuses": ["OK", "SOLVED"]}
    again = InsightJobTrigger(**stored)
    assert again.serialize() == (classpath, kwargs)
    for name in _ARGUMENTS:
        assert getattr(again, name) == stored[name]
    assert_no_secrets(emulator, json.dumps(kwargs), repr(kwargs))


# --------------------------------------------------------------------------------- outcomes


def test_success_streams_every_line_once(
    emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    _submit(emulator, "ok-1")
    payload = _only_event(asyncio.run(_collect(_trigger("ok-1"))))
    assert payload["kind"] == "finished"
    outcome = outcome_from_event(payload)
    assert (outcome.status, outcome.model_status) == ("COMPLETED", "OK")
    assert outcome.succeeded()
    full_log = _run_log(emulator, "ok-1")
    assert len(full_log) == 20
    assert payload["last_run_log_line"] == outcome.last_run_log_line == 19
    # RUNLOG_COMPLETED counted every line the socket brought: the log is complete, unread.
    assert outcome.run_log_complete
    assert _run_log_gets(emulator, "ok-1") == 0
    # ... so the task's resume reads nothing either.
    assert InsightHook("insight_default").run_log_after(outcome, 19) == []
    assert _run_log_gets(emulator, "ok-1") == 0
    captured = capsys.readouterr()
    assert _forwarded(captured.out + captured.err, "ok-1") == full_log
    assert_no_secrets(emulator, captured.out, captured.err, json.dumps(payload))


def test_resume_forwards_only_later_lines(
    emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    _submit(emulator, "resume-1")
    trigger = _trigger("resume-1", last_run_log_line=11, execution_attempts=1)
    payload = _only_event(asyncio.run(_collect(trigger)))
    captured = capsys.readouterr()
    assert (
        _forwarded(captured.out + captured.err, "resume-1") == _run_log(emulator, "resume-1")[12:]
    )
    assert payload["last_run_log_line"] == 19
    assert outcome_from_event(payload).run_log_complete


def test_a_gap_the_trigger_cannot_fill_is_left_to_the_resume(
    emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """A lost batch, and the final run-log GET fails: the trigger stops forwarding at the gap
    and reports the last line before it, so the task's resume reads the rest over REST: every
    line exactly once, in order (before: the lines after the gap were forwarded, the gap's
    lines lost for good although the REST log had them by then)."""
    # The first RUNLOG_UPDATED reaching the trigger has no lines: dropped, leaving a gap.
    emulator.inject(f.MissingFields(fields=("lines",), message_type="RUNLOG_UPDATED"))
    emulator.inject(f.HttpError(method="GET", path="*/run-log", status=403))
    _submit(emulator, "gap-1")
    payload = _only_event(asyncio.run(_collect(_trigger("gap-1"))))
    outcome = outcome_from_event(payload)
    assert outcome.succeeded()
    faults = [entry.data for entry in emulator.record.of_kind("fault")]
    assert {"fault": "http", "path": faults[-1]["path"], "status": 403} in faults
    full_log = _run_log(emulator, "gap-1")
    last = payload["last_run_log_line"]
    assert last == outcome.last_run_log_line
    assert last < len(full_log) - 1, "no gap happened: the test proves nothing"
    assert not outcome.run_log_complete
    captured = capsys.readouterr()
    forwarded = _forwarded(captured.out + captured.err, "gap-1")
    assert forwarded == full_log[: last + 1]
    resumed = InsightHook("insight_default").run_log_after(outcome, last)
    assert forwarded + [line.strip() for line in resumed] == full_log


@pytest.mark.parametrize(
    ("changes", "status", "model_status"),
    [
        ({"final_status": "FAILED", "model_status": None}, "FAILED", None),
        ({"model_status": "ERROR"}, "COMPLETED", "ERROR"),
    ],
    ids=["job-failed", "model-failed"],
)
def test_failures_are_reported_as_outcomes(
    emulator: Emulator, changes: dict[str, Any], status: str, model_status: str | None
) -> None:
    _submit(emulator, "bad-1", **changes)
    payload = _only_event(asyncio.run(_collect(_trigger("bad-1"))))
    outcome = outcome_from_event(payload)
    assert (outcome.status, outcome.model_status) == (status, model_status)
    error = outcome.error()
    assert isinstance(error, JobFailed)
    assert status in str(error)


def test_socket_drop_resubscribes_without_losing_lines(
    emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator.inject(f.DropSocket(after_messages=4))
    # Runs ~1.5 s: well past the reconnect backoff (0.5 s), so the new socket sees the job run.
    _submit(emulator, "drop-1", log_lines=60, lines_per_second=40.0, batch_size=2)
    payload = _only_event(asyncio.run(_collect(_trigger("drop-1"))))
    assert outcome_from_event(payload).succeeded()
    assert len(emulator.record.of_kind("ws_open")) >= 2
    assert len(emulator.record.of_kind("subscribe")) >= 2
    captured = capsys.readouterr()
    assert _forwarded(captured.out + captured.err, "drop-1") == _run_log(emulator, "drop-1")


@pytest.mark.parametrize(
    "emulator_config",
    [EmulatorConfig(ping_interval_seconds=0.05, token_max_age_cap_seconds=4.5)],
    ids=["token-cap-4.5s"],
)
def test_token_refresh_sends_update_token_on_the_open_socket(
    emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    # The refresh is due with a third of the token's life left: 1.5 s, room for a loaded
    # 2-core machine to mint the new token before the old one ends. The job runs 6 s, past
    # the first token's end.
    _submit(emulator, "token-1", log_lines=60, lines_per_second=10.0, batch_size=1)
    payload = _only_event(asyncio.run(_collect(_trigger("token-1"))))
    assert outcome_from_event(payload).succeeded()
    assert emulator.record.of_kind("update_token"), "no UPDATE_TOKEN reached the emulator"
    # The socket outlived its first token thanks to UPDATE_TOKEN: no reconnect was needed.
    assert len(emulator.record.of_kind("ws_open")) == 1
    captured = capsys.readouterr()
    assert _forwarded(captured.out + captured.err, "token-1") == _run_log(emulator, "token-1")
    assert_no_secrets(emulator, captured.out, captured.err, json.dumps(payload))


def test_missing_connection_is_a_permanent_error(emulator: Emulator) -> None:
    payload = _only_event(asyncio.run(_collect(_trigger("x-1", insight_conn_id="no_such_conn"))))
    assert payload["kind"] == "error"
    assert payload["error"]["type"] == "ConfigurationError"
    assert payload["error"]["permanent"] is True
    with pytest.raises(ConfigurationError, match="no_such_conn"):
        outcome_from_event(payload)


# --------------------------------------------------------------------------------- kill, timeout


def test_end_by_cancels_the_job_and_reports_timeout(emulator: Emulator) -> None:
    # The job cannot end on its own within the test's time limit, so the end_by always comes
    # first, however slowly a loaded machine runs the trigger.
    _submit(emulator, "slow-1", log_lines=100_000, lines_per_second=20.0, batch_size=1)
    payload = _only_event(asyncio.run(_collect(_trigger("slow-1", end_by=time.time() + 2.0))))
    assert payload["kind"] == "timeout"
    assert payload["cancelled"] is True
    assert payload["compute_job_id"] == "slow-1"
    assert payload["last_run_log_line"] >= 0
    assert [e.compute_job_id for e in emulator.record.of_kind("delete")] == ["slow-1"]
    emulator.wait_for_status("slow-1", {"CANCELLED"})
    with pytest.raises(InsightTimeout, match="cancelled"):
        outcome_from_event(payload)


async def _run_then_stop(
    emulator: Emulator, trigger: InsightJobTrigger, message: str | None
) -> None:
    """Run the trigger as the triggerer does, then cancel it (with the user-action message)."""
    runner = asyncio.create_task(_collect(trigger))
    await _until(lambda: (emulator.job("long-1") or {}).get("status") == "EXECUTING")
    await asyncio.sleep(0.1)  # some lines flow
    runner.cancel(message)
    with contextlib.suppress(asyncio.CancelledError):
        await runner
    if message == USER_ACTION:
        await trigger.on_kill()
    await trigger.cleanup()


def test_on_kill_that_cannot_ask_leaves_the_job_and_says_how_to_cancel(
    emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """No supervisor (nothing can tell a user's action from a deploy): nothing is cancelled;
    the log names the job and how to cancel it. (With a supervisor: test_trigger_airflow.)"""
    _submit(emulator, "long-1", log_lines=200, lines_per_second=20.0, batch_size=1)
    asyncio.run(_run_then_stop(emulator, _trigger("long-1"), USER_ACTION))
    assert emulator.record.of_kind("delete") == []
    assert emulator.job("long-1")["status"] not in {"CANCELLED", "CANCELLING"}
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "Leaving Insight compute job long-1 running: could not tell" in text
    assert f"DELETE {emulator.base_url}/" in text and "long-1" in text


def test_on_kill_respects_cancel_on_kill_false(emulator: Emulator) -> None:
    _submit(emulator, "long-1", log_lines=30, lines_per_second=50.0, batch_size=1)
    asyncio.run(_run_then_stop(emulator, _trigger("long-1", cancel_on_kill=False), USER_ACTION))
    assert emulator.record.of_kind("delete") == []
    emulator.wait_for_status("long-1", {"COMPLETED"})


def test_restart_or_move_cancels_nothing(emulator: Emulator) -> None:
    """A triggerer shutdown cancels run() without the user-action message; cleanup() runs."""
    _submit(emulator, "long-1", log_lines=30, lines_per_second=50.0, batch_size=1)
    asyncio.run(_run_then_stop(emulator, _trigger("long-1"), None))
    assert emulator.record.of_kind("delete") == []
    emulator.wait_for_status("long-1", {"COMPLETED"})


# --------------------------------------------------------------------------------- sharing


def test_triggers_on_one_connection_share_one_socket(
    emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    job_ids = [f"shared-{n}" for n in range(6)]
    for job_id in job_ids:
        _submit(emulator, job_id)

    async def main() -> list[list[TriggerEvent]]:
        hub = SocketHub.for_running_loop()
        runs = [asyncio.create_task(_collect(_trigger(job_id))) for job_id in job_ids]
        # Wait for the first watch (each trigger first reads its connection), however slow.
        await _until(lambda: hub.socket_count > 0)
        assert hub.socket_count == 1
        results = await asyncio.gather(*runs)
        # The last job ended: the socket closes and the hub forgets it.
        await _until(lambda: hub.socket_count == 0 and emulator.record.of_kind("ws_close"))
        return results

    results = asyncio.run(main())
    assert len(emulator.record.of_kind("ws_open")) == 1
    assert len(emulator.record.of_kind("ws_close")) == 1
    captured = capsys.readouterr()
    for job_id, events in zip(job_ids, results, strict=True):
        assert outcome_from_event(_only_event(events)).compute_job_id == job_id
        assert _forwarded(captured.out + captured.err, job_id) == _run_log(emulator, job_id)


def test_different_connections_get_different_sockets(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_INSIGHT_OTHER", connection_json(emulator))
    _submit(emulator, "a-1")
    _submit(emulator, "b-1")

    async def main() -> None:
        await asyncio.gather(
            _collect(_trigger("a-1")), _collect(_trigger("b-1", insight_conn_id="insight_other"))
        )

    asyncio.run(main())
    assert len(emulator.record.of_kind("ws_open")) == 2


def test_the_same_job_twice_shares_one_subscription(emulator: Emulator) -> None:
    _submit(emulator, "twice-1")

    async def main() -> list[list[TriggerEvent]]:
        return list(
            await asyncio.gather(_collect(_trigger("twice-1")), _collect(_trigger("twice-1")))
        )

    first, second = asyncio.run(main())
    for events in (first, second):
        outcome = outcome_from_event(_only_event(events))
        assert isinstance(outcome, JobOutcome) and outcome.succeeded()
    assert len(emulator.record.of_kind("ws_open")) == 1
    subscribed = [entry.compute_job_id for entry in emulator.record.of_kind("subscribe")]
    assert subscribed.count("twice-1") == 1, subscribed


# --------------------------------------------------------------------------------- logging


def test_every_event_is_logged_exactly_once(
    emulator: Emulator, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Each status line appears once in everything the task log would get (the trigger logs
    the events; the driver must not log them too), and each run-log line once."""
    caplog.set_level("DEBUG")
    _submit(emulator, "once-1")
    payload = _only_event(asyncio.run(_collect(_trigger("once-1"))))
    assert outcome_from_event(payload).succeeded()
    captured = capsys.readouterr()
    text = "\n".join([captured.out, captured.err, *(r.getMessage() for r in caplog.records)])
    for status in ("EXECUTING", "COMPLETING", "COMPLETED, model status OK"):
        line = f"Insight compute job once-1: status {status} "
        assert text.count(line) == 1, (status, text.count(line))
    assert text.count("Insight compute job once-1 ended: COMPLETED") == 1
    assert _forwarded(captured.out + captured.err, "once-1") == _run_log(emulator, "once-1")


def test_unreachable_limit_reaches_the_follower() -> None:
    """The trigger's own limit wins; None means the connection's."""
    from airflow_insight.settings import ConnectionSettings

    settings = ConnectionSettings(
        "http://127.0.0.1:1", "id", "secret", unreachable_limit_seconds=42
    )
    assert _trigger("u-1")._follower_config(settings).unreachable_limit_seconds == 42
    chosen = _trigger("u-1", unreachable_limit_seconds=7.5)._follower_config(settings)
    assert chosen.unreachable_limit_seconds == 7.5
    assert chosen.silence_limit_seconds == 0.5
