"""InsightJobSensor: poke mode against the emulator, and the deferrable sensor's trigger."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred
from sensor_support import SENSOR_SCRIPT

from airflow_insight.emulator import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    Emulator,
    airflow_connection_json,
)
from airflow_insight.exceptions import AuthenticationError, JobFailed, ServerUnreachable
from airflow_insight.hooks.insight import RUN_LOG_PREFIX
from airflow_insight.protocol.outcome import JobOutcome
from airflow_insight.sensors.insight import InsightJobSensor
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport.rest import InsightRestClient
from airflow_insight.triggers.end import EndPlan
from airflow_insight.triggers.insight import CLASSPATH, InsightJobTrigger, trigger_kwargs
from airflow_insight.triggers.payload import TriggerPayload

RUN_LOG_MARK = "[insight.run_log]"


def _submit(emulator: Emulator, job_id: str, **script_changes: Any) -> None:
    if script_changes:
        emulator.add_script(job_id, dataclasses.replace(SENSOR_SCRIPT, **script_changes))
    settings = ConnectionSettings(emulator.base_url, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    with InsightRestClient(settings) as rest:
        rest.submit_job({"id": job_id, "computeJobType": "SOLVER", "runLogMessages": True})


def _run_log_gets(emulator: Emulator, job_id: str) -> int:
    """How many times the job's run log was read over REST."""
    path = f"/api/scenarios/{emulator.hub.jobs[job_id].scenario_id}/run-log"
    return len(emulator.record.requests("GET", path))


def _sensor(job_id: str, **kwargs: Any) -> InsightJobSensor:
    return InsightJobSensor(
        task_id="wait", compute_job_id=job_id, poke_interval=0.05, timeout=20, **kwargs
    )


def test_poke_mode_returns_the_result_and_forwards_the_run_log(
    emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    _submit(emulator, "poke-ok")
    result = _sensor("poke-ok").execute(context={})  # type: ignore[arg-type]
    assert result["compute_job_id"] == "poke-ok"
    assert (result["status"], result["model_status"]) == ("COMPLETED", "OK")
    assert result["run_log_url"].startswith(emulator.base_url)
    captured = capsys.readouterr()
    forwarded = [
        record.split("]", 1)[1].split("[", 1)[0].strip()
        for record in (captured.out + captured.err).splitlines()
        if RUN_LOG_MARK in record
    ]
    assert forwarded == [RUN_LOG_PREFIX + line.strip() for line in emulator.run_log("poke-ok")]
    assert DEMO_CLIENT_SECRET not in captured.out + captured.err


def test_poke_mode_fails_with_the_job(emulator: Emulator) -> None:
    _submit(emulator, "poke-bad", final_status="FAILED", model_status=None)
    with pytest.raises(JobFailed, match="FAILED"):
        _sensor("poke-bad").execute(context={})  # type: ignore[arg-type]


def test_poke_mode_waits_for_a_job_not_there_yet(emulator: Emulator) -> None:
    sensor = _sensor("later-1")
    assert sensor.poke(context={}) is False  # type: ignore[arg-type]
    _submit(emulator, "later-1")
    assert sensor.execute(context={})["status"] == "COMPLETED"  # type: ignore[arg-type]


def test_refused_credentials_fail_without_retry(emulator: Emulator) -> None:
    _submit(emulator, "creds-1")
    with pytest.raises(AirflowFailException, match="not retried") as info:
        _sensor("creds-1", insight_conn_id="insight_bad").execute(context={})  # type: ignore[arg-type]
    assert "not-the-secret" not in str(info.value)


def test_deferrable_sensor_defers_with_the_shared_trigger_kwargs() -> None:
    sensor = _sensor("deferred-1", deferrable=True, accepted_model_statuses=["OK", "SOLVED"])
    with pytest.raises(TaskDeferred) as info:
        sensor.execute(context={})  # type: ignore[arg-type]
    deferred = info.value
    assert isinstance(deferred.trigger, InsightJobTrigger)
    classpath, kwargs = deferred.trigger.serialize()
    assert classpath == CLASSPATH
    assert kwargs == trigger_kwargs(
        insight_conn_id="insight_default",
        compute_job_id="deferred-1",
        accepted_model_statuses=["OK", "SOLVED"],
        end_by=None,
        cancel_on_kill=False,
        end=EndPlan().to_json(),
    )
    assert deferred.method_name == "execute_complete"
    # The sensor's own timeout fails the task without cancelling a job it does not own.
    assert deferred.timeout is not None and deferred.timeout.total_seconds() == 20
    assert "compute_job_id" in InsightJobSensor.template_fields


def test_resume_on_worker_keeps_the_sensors_resume_on_a_worker() -> None:
    sensor = _sensor("deferred-2", deferrable=True, resume_on_worker=True)
    with pytest.raises(TaskDeferred) as info:
        sensor.execute(context={})  # type: ignore[arg-type]
    assert info.value.trigger.serialize()[1]["end"] is None


def test_execute_complete_ends_like_a_poke(emulator: Emulator) -> None:
    _submit(emulator, "complete-1")
    document = emulator.wait_for_status("complete-1", {"COMPLETED"})
    outcome = JobOutcome(
        "complete-1", "COMPLETED", "OK", 1, document.get("resultUrl"), document["runLogUrl"], 7
    )
    event = {"kind": "finished", "outcome": outcome.to_dict(), "last_run_log_line": 7}
    result = _sensor("complete-1", deferrable=True).execute_complete({}, event)  # type: ignore[arg-type]
    assert result["status"] == "COMPLETED"
    error = TriggerPayload.failed("complete-1", -1, AuthenticationError("refused")).to_dict()
    with pytest.raises(AirflowFailException, match="refused"):
        _sensor("complete-1", deferrable=True).execute_complete({}, error)  # type: ignore[arg-type]


def test_execute_complete_reads_the_run_log_only_when_the_trigger_missed_some(
    emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    _submit(emulator, "resume-2")
    document = emulator.wait_for_status("resume-2", {"COMPLETED"})
    log = [line.strip() for line in emulator.run_log("resume-2")]
    last = len(log) - 1
    outcome = JobOutcome(
        "resume-2", "COMPLETED", "OK", 1, None, document["runLogUrl"], last, run_log_complete=True
    )
    sensor = _sensor("resume-2", deferrable=True)
    event = {"kind": "finished", "outcome": outcome.to_dict(), "last_run_log_line": last}
    assert sensor.execute_complete({}, event)["status"] == "COMPLETED"  # type: ignore[arg-type]
    assert _run_log_gets(emulator, "resume-2") == 0
    # The trigger forwarded fewer lines than the complete log holds: the rest is read over REST.
    event["last_run_log_line"] = last - 3
    assert sensor.execute_complete({}, event)["status"] == "COMPLETED"  # type: ignore[arg-type]
    assert _run_log_gets(emulator, "resume-2") == 1
    captured = capsys.readouterr()
    forwarded = [
        record.split("]", 1)[1].split("[", 1)[0].strip()
        for record in (captured.out + captured.err).splitlines()
        if RUN_LOG_MARK in record
    ]
    assert forwarded == [RUN_LOG_PREFIX + line for line in log[-3:]]


def test_execute_complete_says_when_the_triggerer_had_not_read_the_last_lines(
    emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trigger that fired at its log-delivery limit (``log_unread``): the task log says which
    lines may be in the triggerer's own log; an event without the flag logs nothing of it."""
    _submit(emulator, "unread-1")
    document = emulator.wait_for_status("unread-1", {"COMPLETED"})
    outcome = JobOutcome("unread-1", "COMPLETED", "OK", 1, None, document["runLogUrl"], 7)
    event = TriggerPayload.finished(outcome).to_dict()
    sensor = _sensor("unread-1", deferrable=True)
    assert sensor.execute_complete({}, event)["status"] == "COMPLETED"  # type: ignore[arg-type]
    assert "had not read" not in "".join(capsys.readouterr())
    event["log_unread"] = True
    assert sensor.execute_complete({}, event)["status"] == "COMPLETED"  # type: ignore[arg-type]
    captured = "".join(capsys.readouterr())
    assert "had not read the trigger's last log records" in captured
    assert "Insight compute job unread-1 after line 7 may be in the triggerer's own log" in captured


def test_poke_mode_fails_retryably_when_the_server_stays_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pokes that all fail to reach the server end the wait after the limit (before: they went
    on until the sensor's timeout), with a retryable error that names the job and the server."""
    with Emulator() as gone:
        connection = gone.airflow_connection_json(
            extra={"connect_timeout_seconds": 0.5, "read_timeout_seconds": 1}
        )
        base_url = gone.base_url
    monkeypatch.setenv("AIRFLOW_CONN_INSIGHT_GONE", connection)  # the port is closed now
    sensor = _sensor("gone-1", insight_conn_id="insight_gone", unreachable_limit_seconds=0.2)
    with pytest.raises(ServerUnreachable, match="gone-1") as info:
        sensor.execute(context={})  # type: ignore[arg-type]
    assert base_url in str(info.value)
    assert not info.value.permanent


def _tcp_relay() -> Any:
    """The dead-server relay of the Airflow tests (tests/airflow/relay.py)."""
    path = Path(__file__).parents[1] / "airflow" / "relay.py"
    spec = importlib.util.spec_from_file_location("dead_server_relay", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.TcpRelay


def test_poke_mode_says_an_outage_with_its_deadline_and_its_end(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A poke that gets no answer says when the sensor gives up (the REST retries in between are
    DEBUG); the next answered poke says the server is back."""
    with _tcp_relay()(emulator.config.host, emulator.port) as relay:
        base_url = emulator.base_url.replace(f":{emulator.port}", f":{relay.port}", 1)
        monkeypatch.setenv(
            "AIRFLOW_CONN_INSIGHT_FLAKY",
            airflow_connection_json(
                base_url, client_id=DEMO_CLIENT_ID, client_secret=DEMO_CLIENT_SECRET
            ),
        )
        sensor = _sensor("flaky-1", insight_conn_id="insight_flaky", unreachable_limit_seconds=600)
        assert sensor.poke({}) is False  # type: ignore[arg-type]  # not found yet: an answer
        relay.kill()
        assert sensor.poke({}) is False  # type: ignore[arg-type]
        relay.revive()
        assert sensor.poke({}) is False  # type: ignore[arg-type]
    text = "".join(capsys.readouterr())
    server = f"{base_url.rstrip('/')} (Airflow connection 'insight_flaky')"
    assert f"The Insight server {server} stopped answering (" in text, text
    assert "unreachable_limit_seconds=600" in text and " UTC, in 600 s" in text
    assert f"The Insight server {server} answers again after" in text
    assert "retrying in" not in text
    assert text.count("[warning") == 1, text
