"""InsightJobStartTrigger: the task's job chosen and submitted in the triggerer.

Driven in-process against the emulator, with the triggerer supervisor's own request handlers on
the scratch SQLite DB (as in ``test_trigger_airflow``): the trigger has a real task instance to
derive its job id from, and its watermarks and kill questions reach real handlers.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.execution_time.comms import GetVariableKeys
from airflow_support import InProcessSupervisorComms, migrate_and_sync, new_task_instance
from support.trigger_events import outcome_from_event
from trigger_support import collect, forwarded, run_log, submit, until

from airflow_insight.compat import supervisor
from airflow_insight.emulator import DEMO_CLIENT_SECRET, Emulator
from airflow_insight.exceptions import ConfigurationError
from airflow_insight.protocol.reattach import TaskIdentity
from airflow_insight.triggers.start import (
    START_CLASSPATH,
    STARTED_KEY,
    InsightJobStartTrigger,
    started_job,
)


@pytest.fixture
def comms(monkeypatch: pytest.MonkeyPatch) -> Iterator[InProcessSupervisorComms]:
    """The trigger's SUPERVISOR_COMMS: the real handlers on the real (SQLite) DB."""
    from airflow.sdk.execution_time import task_runner

    migrate_and_sync()
    real = InProcessSupervisorComms()
    asyncio.run(real.asend(GetVariableKeys(prefix="warm-up")))
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", real, raising=False)
    yield real
    for key in real.watermark_keys():
        asyncio.run(supervisor.delete_variable(key))


def _trigger(ti: Any, **changes: Any) -> InsightJobStartTrigger:
    kwargs: dict[str, Any] = {"insight_conn_id": "insight_default", "silence_limit_seconds": 0.5}
    trigger = InsightJobStartTrigger(**{**kwargs, **changes})
    trigger.task_instance = ti  # what the triggerer sets before run()
    return trigger


def _only_event(trigger: InsightJobStartTrigger, timeout: float = 60.0) -> dict[str, Any]:
    events = asyncio.run(collect(trigger, timeout=timeout))
    assert len(events) == 1, events
    payload: dict[str, Any] = events[0].payload
    json.dumps(payload)  # JSON-safe, as Airflow stores it
    return payload


def _created(emulator: Emulator) -> list[Any]:
    return emulator.record.of_kind("job_created")


def test_a_fresh_try_submits_its_derived_job_on_the_watching_socket(
    emulator: Emulator, comms: InProcessSupervisorComms, capsys: pytest.CaptureFixture[str]
) -> None:
    ti = new_task_instance("deferred")
    job_id = TaskIdentity.of(ti).job_id(1)
    event = _only_event(_trigger(ti, job_request={"computeJobType": "SOLVER"}))
    assert outcome_from_event(event).succeeded(["OK"])
    assert event["compute_job_id"] == job_id
    assert started_job(event) is not None
    started_id, document = started_job(event) or ("", None)
    assert started_id == job_id and document is not None and document["id"] == job_id
    # Submitted once, tagged with the connection-id of the socket that then carried the job.
    (created,) = _created(emulator)
    assert created.compute_job_id == job_id
    assert created.data["connectionKnown"] is True
    sent = {
        e.connection_id for e in emulator.record.of_kind("ws_sent") if e.compute_job_id == job_id
    }
    assert sent == {created.connection_id}
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert f"Submitted Insight compute job {job_id} from the triggerer" in text
    assert forwarded(text, job_id) == run_log(emulator, job_id)
    assert DEMO_CLIENT_SECRET not in text + json.dumps(event)


def test_an_object_storage_payload_is_read_by_the_trigger_and_sent_with_the_job(
    emulator: Emulator, comms: InProcessSupervisorComms, tmp_path: Path
) -> None:
    model = tmp_path / "shared" / "model.lp"
    model.parent.mkdir()
    model.write_text("minimize\n obj: x\nend\n")
    ti = new_task_instance("deferred")
    event = _only_event(_trigger(ti, payload=model.as_uri()))
    assert outcome_from_event(event).succeeded(["OK"])
    payload = emulator.hub.jobs[event["compute_job_id"]].payload
    assert payload is not None
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        assert archive.read("model.lp") == model.read_bytes()


def test_a_payload_url_that_cannot_be_read_ends_the_wait_with_a_configuration_error(
    emulator: Emulator, comms: InProcessSupervisorComms, tmp_path: Path
) -> None:
    ti = new_task_instance("deferred")
    event = _only_event(_trigger(ti, payload=(tmp_path / "missing.zip").as_uri()))
    assert event["kind"] == "error"
    with pytest.raises(ConfigurationError, match="does not exist"):
        outcome_from_event(event)
    assert _created(emulator) == []


def test_a_retry_re_attaches_to_the_earlier_try_s_running_job(
    emulator: Emulator, comms: InProcessSupervisorComms, capsys: pytest.CaptureFixture[str]
) -> None:
    ti = new_task_instance("deferred", try_number=2)
    earlier = TaskIdentity.of(ti).job_id(1)
    submit(emulator, earlier, log_lines=60, lines_per_second=30.0)
    event = _only_event(_trigger(ti))
    assert event["compute_job_id"] == earlier
    assert outcome_from_event(event).succeeded(["OK"])
    assert [e.compute_job_id for e in _created(emulator)] == [earlier]  # nothing new submitted
    assert (started_job(event) or ("", None))[0] == earlier
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert f"Re-attaching to Insight compute job {earlier} from the triggerer" in text


def test_a_rebuilt_trigger_follows_the_job_it_submitted_instead_of_submitting_again(
    emulator: Emulator, comms: InProcessSupervisorComms
) -> None:
    """Another triggerer picks the trigger up after it submitted: same try, same derived id."""
    ti = new_task_instance("deferred")
    job_id = TaskIdentity.of(ti).job_id(1)

    async def start_then_move() -> dict[str, Any]:
        first = _trigger(ti)
        runner = asyncio.create_task(collect(first, timeout=60))
        await until(lambda: job_id in emulator.hub.jobs, timeout=30)
        runner.cancel()  # a move: no on_kill (the task is still deferred)
        await asyncio.gather(runner, return_exceptions=True)
        await first.cleanup()
        (event,) = await collect(_trigger(ti), timeout=60)
        return dict(event.payload)

    event = asyncio.run(start_then_move())
    assert event["compute_job_id"] == job_id
    assert outcome_from_event(event).succeeded(["OK"])
    assert [e.compute_job_id for e in _created(emulator)] == [job_id]
    assert emulator.record.of_kind("delete") == []


def test_serialize_mirrors_init_and_names_the_start_trigger() -> None:
    arguments: dict[str, Any] = {
        "insight_conn_id": "insight_other",
        "job_request": {"computeJobType": "{{ 'SOLVER' }}"},
        "payload": "s3://aws_default@bucket/{{ ds }}/model.zip",
        "accepted_model_statuses": ["OK", "SOLVED"],
        "silence_limit_seconds": 0.5,
        "unreachable_limit_seconds": 120.0,
        "execution_timeout_seconds": 300.0,
        "results_path": "s3://aws_default@bucket/{{ ds }}/results.zip",
        "solution_path": "s3://aws_default@bucket/{{ ds }}/solution.json",
        "progress_plot_path": "s3://aws_default@bucket/{{ ds }}/progress.png",
        "end": {
            "xcoms": {},
            "results_path": None,
            "solution_path": None,
            "progress_plot_path": None,
            "with_progress": True,
            "target_gap": 0.02,
            "delete": True,
        },
        "progress": {
            "callbacks": ["INTSOL", "GAPNOTIFY"],
            "stop_rules": [{"rule": "relative_gap", "relative_gap": 0.02}],
            "series_limit": 50,
        },
    }
    defaults = inspect.signature(InsightJobStartTrigger).parameters
    assert set(arguments) == set(defaults), "a new argument needs a test value here"
    classpath, kwargs = InsightJobStartTrigger(**arguments).serialize()
    assert classpath == START_CLASSPATH
    stored = json.loads(json.dumps(kwargs))
    assert stored == arguments
    assert InsightJobStartTrigger(**stored).serialize() == (classpath, kwargs)


def test_an_event_of_the_following_trigger_names_no_started_job() -> None:
    assert started_job({"kind": "finished", "compute_job_id": "j"}) is None
    assert started_job({STARTED_KEY: {"compute_job_id": "j", "document": None}}) == ("j", None)
