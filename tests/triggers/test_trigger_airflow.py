"""The trigger against a real metadata DB: on_kill asks the task's state, watermarks resume.

The trigger's ``run()`` is driven in-process against the emulator; its questions go to the
triggerer supervisor's own request handlers and the in-process execution API on the SQLite DB
of the scratch AIRFLOW_HOME (see ``airflow_support``). Each test's event loop plays one
triggerer; a second ``asyncio.run`` is "another triggerer" (a new hub, a new watermark writer).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.execution_time.comms import GetVariableKeys
from airflow_support import (
    InProcessSupervisorComms,
    SilentSupervisorComms,
    migrate_and_sync,
    new_task_instance,
    set_state,
)
from support.trigger_events import outcome_from_event
from trigger_support import collect, forwarded, run_log, submit, until

from airflow_insight.compat import features, supervisor
from airflow_insight.emulator import Emulator
from airflow_insight.operators.insight import InsightJobOperator
from airflow_insight.triggers import watermark
from airflow_insight.triggers.end import EndPlan
from airflow_insight.triggers.insight import InsightJobTrigger
from airflow_insight.triggers.watermark import VARIABLE_PREFIX
from airflow_insight.triggers.watermark_store import WatermarkReader
from airflow_insight.triggers.watermark_table import (
    STALE_SECONDS,
    Watermark,
    read_table,
)

USER_ACTION = "__airflow_user_action__"
#: 900 lines over ~45 s: long enough to stop it mid-run on a loaded machine.
LONG = {"log_lines": 900, "lines_per_second": 20.0, "batch_size": 1}
#: 300 lines over ~10 s: stopped mid-run, then followed to its end by a second trigger.
RESUMABLE = {"log_lines": 300, "lines_per_second": 30.0, "batch_size": 1}


@pytest.fixture
def comms(monkeypatch: pytest.MonkeyPatch) -> Iterator[InProcessSupervisorComms]:
    """The trigger's SUPERVISOR_COMMS: the real handlers on the real (SQLite) DB."""
    from airflow.sdk.execution_time import task_runner

    migrate_and_sync()
    real = InProcessSupervisorComms()
    asyncio.run(real.asend(GetVariableKeys(prefix="warm-up")))  # the API's first call
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", real, raising=False)
    yield real
    for key in real.watermark_keys():  # never leak a table into another test
        asyncio.run(supervisor.delete_variable(key))


def _trigger(job_id: str, ti: Any, **changes: Any) -> InsightJobTrigger:
    kwargs: dict[str, Any] = {
        "insight_conn_id": "insight_default",
        "compute_job_id": job_id,
        "silence_limit_seconds": 0.5,
        **changes,
    }
    trigger = InsightJobTrigger(**kwargs)
    trigger.task_instance = ti  # what the triggerer sets before run()
    return trigger


def _text(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> str:
    captured = capsys.readouterr()
    return "\n".join([captured.out, captured.err, *(r.getMessage() for r in caplog.records)])


async def _run_then_cancel(
    emulator: Emulator,
    trigger: InsightJobTrigger,
    job_id: str,
    message: str | None,
    *,
    lines_first: int = 5,
    before_cancel: Any = None,
    after: Any = None,
    cleanup: bool = True,
) -> None:
    """Run as the triggerer does, then cancel (message: a user action or None: shutdown)."""
    runner = asyncio.create_task(collect(trigger, timeout=120))
    # Forwarded by the trigger (not just written by the emulator): the trigger really follows.
    await until(lambda: trigger._mark.last_run_log_line >= lines_first, timeout=60)
    if before_cancel is not None:
        await before_cancel()
    runner.cancel(message)
    with contextlib.suppress(asyncio.CancelledError):
        await runner
    if message == USER_ACTION:
        await trigger.on_kill()
    if cleanup:
        await trigger.cleanup()
    if after is not None:
        await after()  # the loop (this triggerer) lives on meanwhile


def _deletes(emulator: Emulator) -> list[str]:
    return [entry.compute_job_id for entry in emulator.record.of_kind("delete")]


# --------------------------------------------------------------------------------- on_kill


@pytest.mark.parametrize("state", ["failed", "success", None], ids=["failed", "success", "cleared"])
def test_on_kill_after_a_user_stopped_the_task_cancels_the_job(
    emulator: Emulator, comms: InProcessSupervisorComms, state: str | None
) -> None:
    ti = new_task_instance("deferred")
    submit(emulator, "user-1", **LONG)

    async def user_acts() -> None:
        set_state(ti, state)

    async def table_gone() -> None:  # a user ended it: nothing kept for a next triggerer
        await until(lambda: comms.watermark_keys() == [], timeout=10)

    trigger = _trigger("user-1", ti)
    asyncio.run(
        _run_then_cancel(
            emulator, trigger, "user-1", USER_ACTION, before_cancel=user_acts, after=table_gone
        )
    )
    assert _deletes(emulator) == ["user-1"]
    emulator.wait_for_status("user-1", {"CANCELLED"})
    assert any(type(m).__name__ == "GetTaskStates" for m in comms.requests)


@pytest.mark.parametrize("state", ["deferred", "up_for_retry"])
def test_on_kill_while_the_task_still_waits_leaves_the_job_running(
    emulator: Emulator,
    comms: InProcessSupervisorComms,
    state: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What a deploy (the triggerer's process group SIGTERMed) or a stalled triggerer looks
    like to the trigger: on_kill with the user-action message, the task still deferred."""
    caplog.set_level("INFO")
    ti = new_task_instance(state)
    submit(emulator, "deploy-1", **LONG)
    trigger = _trigger("deploy-1", ti)
    asyncio.run(_run_then_cancel(emulator, trigger, "deploy-1", USER_ACTION))
    assert _deletes(emulator) == []
    assert emulator.job("deploy-1")["status"] == "EXECUTING"
    text = _text(capsys, caplog)
    assert "Leaving Insight compute job deploy-1 running" in text
    # ... and the watermark stays for the triggerer that takes the job over.
    (key,) = comms.watermark_keys()
    marks = read_table(comms.variable(key))[1]
    assert [mark.compute_job_id for mark in marks.values()] == ["deploy-1"]


def test_on_kill_with_a_silent_supervisor_leaves_the_job_and_says_how_to_cancel(
    emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from airflow.sdk.execution_time import task_runner

    caplog.set_level("INFO")
    ti = new_task_instance("failed")  # even so: without an answer nothing is cancelled
    monkeypatch.setattr(supervisor, "ASK_TIMEOUT_SECONDS", 0.3)
    monkeypatch.setattr(supervisor, "TASK_STATE_TIMEOUT_SECONDS", 0.3)
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", SilentSupervisorComms(), raising=False)
    submit(emulator, "silent-1", **LONG)
    asyncio.run(_run_then_cancel(emulator, _trigger("silent-1", ti), "silent-1", USER_ACTION))
    assert _deletes(emulator) == []
    text = _text(capsys, caplog)
    assert "Leaving Insight compute job silent-1 running: could not tell" in text
    assert f"DELETE {emulator.base_url}/" in text


def test_on_kill_does_not_delete_a_job_that_already_ended(
    emulator: Emulator, comms: InProcessSupervisorComms
) -> None:
    """Another triggerer saw the job finish and the task moved on: no DELETE of its results."""
    ti = new_task_instance("deferred")
    submit(emulator, "done-1")
    emulator.wait_for_status("done-1", {"COMPLETED"})
    trigger = _trigger("done-1", ti)

    async def main() -> None:
        set_state(ti, "success")
        await trigger.on_kill()

    asyncio.run(main())
    assert _deletes(emulator) == []


# ------------------------------------------------- an Airflow that never calls on_kill (before 3.3)


@pytest.fixture
def without_trigger_on_kill(monkeypatch: pytest.MonkeyPatch) -> None:
    """This Airflow as 3.0-3.2 are: no trigger on_kill, no Variable listing (no watermarks)."""
    for name in ("trigger_on_kill", "watermark_resume"):
        off = dataclasses.replace(getattr(features, name)(), on=False, why_off="(test)")
        monkeypatch.setattr(features, name, lambda off=off: off)


async def _as_an_older_runner(trigger: InsightJobTrigger, before_cancel: Any) -> None:
    """Run and clean up in one task as Airflow's ``run_trigger`` does, then cancel that task as
    a runner before 3.3 does a trigger it no longer owns: with no message, on every turn of its
    loop (about a second; far more often here) until the task ends."""

    async def run_trigger() -> None:
        try:
            async for _ in trigger.run():
                pass
        finally:
            with contextlib.suppress(Exception):
                await trigger.cleanup()

    task = asyncio.create_task(run_trigger())
    await until(lambda: trigger._mark.last_run_log_line >= 5, timeout=60)
    await before_cancel()
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=0.02)


@pytest.mark.parametrize(
    ("state", "cancelled"),
    [("failed", True), (None, True), ("deferred", False), ("up_for_retry", False)],
    ids=["failed", "cleared", "deferred", "up_for_retry"],
)
@pytest.mark.usefixtures("without_trigger_on_kill")
def test_without_trigger_on_kill_cleanup_makes_the_kill_decision(
    emulator: Emulator, comms: InProcessSupervisorComms, state: str | None, cancelled: bool
) -> None:
    """Before 3.3 the runner cancels a removed trigger with no message and calls only cleanup()."""
    ti = new_task_instance("deferred")
    job_id = f"no-on-kill-{state}"
    submit(emulator, job_id, **LONG)

    async def airflow_acts() -> None:
        set_state(ti, state)

    trigger = _trigger(job_id, ti)
    asyncio.run(_as_an_older_runner(trigger, before_cancel=airflow_acts))
    assert _deletes(emulator) == ([job_id] if cancelled else [])
    if cancelled:
        emulator.wait_for_status(job_id, {"CANCELLED"})
    else:
        assert emulator.job(job_id)["status"] == "EXECUTING"
    assert comms.watermark_keys() == []  # nothing listed or written where it cannot be read
    listed = [m for m in comms.requests if type(m).__name__ in ("GetVariableKeys", "PutVariable")]
    assert [getattr(m, "prefix", None) for m in listed] == ["warm-up"]


# --------------------------------------------------------------------------------- resuming


def test_a_clean_stop_resumes_on_the_next_triggerer_with_nothing_repeated(
    emulator: Emulator,
    comms: InProcessSupervisorComms,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO")
    ti = new_task_instance("deferred")
    submit(emulator, "move-1", **RESUMABLE)
    first = _trigger("move-1", ti)
    # Triggerer 1 stops (SIGTERM: run() cancelled without a message, then cleanup()).
    asyncio.run(_run_then_cancel(emulator, first, "move-1", None, lines_first=20))
    text_1 = _text(capsys, caplog)
    caplog.clear()
    lines_1 = forwarded(text_1, "move-1")
    assert lines_1, "the first triggerer forwarded nothing: the test proves nothing"
    assert "the next triggerer resumes after it" in text_1
    (first_table,) = comms.watermark_keys()
    # Triggerer 2 rebuilds the trigger from the ORIGINAL kwargs (last_run_log_line -1).
    second = _trigger("move-1", ti)
    assert second.last_run_log_line == -1

    async def follow_to_the_end() -> dict[str, Any]:
        (event,) = await collect(second, timeout=120)
        # The job ended: its entry leaves triggerer 2's table, whose Variable then goes.
        await until(lambda: comms.watermark_keys() == [first_table], timeout=15)
        return dict(event.payload)

    payload = asyncio.run(follow_to_the_end())
    text_2 = _text(capsys, caplog)
    lines_2 = forwarded(text_2, "move-1")
    full = run_log(emulator, "move-1")
    assert lines_1 + lines_2 == full  # every line once, in order: nothing lost, nothing repeated
    assert f"Resuming after line {len(lines_1) - 1} of attempt 1" in text_2
    outcome = outcome_from_event(payload)
    assert outcome.succeeded() and payload["last_run_log_line"] == len(full) - 1
    assert _deletes(emulator) == []


def test_a_dead_triggerers_table_is_deleted_once_stale(
    emulator: Emulator, comms: InProcessSupervisorComms
) -> None:
    ti = supervisor.TaskInstanceRef.of(new_task_instance("deferred"))
    assert ti is not None

    async def store_then_collect() -> None:
        dead = watermark.variables_writer(writer_id="dead-triggerer")
        assert await dead.persist_now(ti, Watermark("gone-1", 1, 5, 1), 5.0)
        assert comms.watermark_keys() == [dead.key]
        await watermark.variables_reader().collect_stale()
        assert comms.watermark_keys() == [dead.key]  # fresh: kept
        later = time.time() + STALE_SECONDS + 1  # a reader whose clock is past the lease
        await WatermarkReader(watermark.VariablesStore(), lambda: later).collect_stale()
        assert comms.watermark_keys() == []
        await dead.close()

    asyncio.run(store_then_collect())


def test_a_crash_loses_no_line_and_repeats_at_most_one_write_interval(
    emulator: Emulator,
    comms: InProcessSupervisorComms,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Triggerer 1 dies without cleanup (SIGKILL, OOM): the next resumes after the last write."""
    caplog.set_level("INFO")
    ti = new_task_instance("deferred")
    submit(emulator, "crash-1", **RESUMABLE)
    first = _trigger("crash-1", ti)

    async def wait_for_a_write() -> None:
        await until(lambda: comms.watermark_keys() != [], timeout=20)
        await asyncio.sleep(1.2)  # forward some more after the write: those may repeat

    asyncio.run(
        _run_then_cancel(
            emulator, first, "crash-1", None, before_cancel=wait_for_a_write, cleanup=False
        )
    )
    lines_1 = forwarded(_text(capsys, caplog), "crash-1")
    (key,) = comms.watermark_keys()
    (stored,) = read_table(comms.variable(key))[1].values()
    assert stored.last_run_log_line < len(lines_1) - 1, "nothing to repeat: proves nothing"
    caplog.clear()
    second = _trigger("crash-1", ti)
    asyncio.run(collect(second, timeout=120))
    text_2 = _text(capsys, caplog)
    lines_2 = forwarded(text_2, "crash-1")
    full = run_log(emulator, "crash-1")
    resumed_at = stored.last_run_log_line + 1
    assert lines_2 == full[resumed_at:]  # no line lost
    repeated = len(lines_1) - resumed_at
    assert lines_1[resumed_at:] == full[resumed_at : len(lines_1)]
    # Some lines repeat: those forwarded after the last write. How many depends on the write
    # cadence, which test_watermark_store.py checks on a driven clock.
    assert repeated > 0
    assert f"Resuming after line {stored.last_run_log_line} of attempt" in text_2


def test_a_watermark_of_another_job_or_try_is_not_used(
    emulator: Emulator, comms: InProcessSupervisorComms
) -> None:
    ti = new_task_instance("deferred", try_number=2)

    async def store(job_id: str, try_number: int) -> None:
        writer = watermark.variables_writer(writer_id=f"test-{job_id}-{try_number}")
        ref = supervisor.TaskInstanceRef.of(ti)
        assert ref is not None
        await writer.persist_now(ref, Watermark(job_id, 1, 99, try_number), 5.0)
        await writer.close()

    asyncio.run(store("other-job", 2))
    asyncio.run(store("stale-1", 1))
    submit(emulator, "stale-1")
    payload = asyncio.run(collect(_trigger("stale-1", ti), timeout=30))[0].payload
    # Neither entry applies: the trigger forwarded the whole log itself.
    assert payload["last_run_log_line"] == len(run_log(emulator, "stale-1")) - 1
    assert len(comms.watermark_keys()) == 2
    assert all(key.startswith(VARIABLE_PREFIX) for key in comms.watermark_keys())


def test_a_resume_never_uses_a_read_older_than_its_trigger(
    emulator: Emulator, comms: InProcessSupervisorComms
) -> None:
    """Triggers starting together share one read, but one built after a clean stop's final
    write reads again, so it sees that write (else lines would repeat after a clean stop)."""
    ti = supervisor.TaskInstanceRef.of(new_task_instance("deferred"))
    assert ti is not None

    async def main() -> None:
        stopped = watermark.variables_writer(writer_id="stopped-triggerer")
        reader = watermark.variables_reader()
        await stopped.persist_now(ti, Watermark("j-1", 1, 5, 1), 5.0)
        early = time.time()
        assert (await reader.find(ti, "j-1", not_before=early)).last_run_log_line == 5
        reads = len(comms.requests)
        assert (await reader.find(ti, "j-1", not_before=early)).last_run_log_line == 5
        assert len(comms.requests) == reads  # shared: no second read
        await stopped.persist_now(ti, Watermark("j-1", 1, 9, 1), 5.0)
        built_after = time.time()
        assert (await reader.find(ti, "j-1", not_before=built_after)).last_run_log_line == 9

    asyncio.run(main())


# --------------------------------------------------------------------------------- the end


def _end_plan(job_id: str, root: Path, **changes: Any) -> dict[str, Any]:
    plan = EndPlan(
        xcoms={"compute_job_id": job_id, "insight_job_url": f"http://ui.example/jobs/{job_id}"},
        results_path=(root / job_id / "results.zip").as_uri(),
        delete=True,
    )
    return dataclasses.replace(plan, **changes).to_json()


async def _pulled(comms: InProcessSupervisorComms, ti: Any, key: str) -> Any:
    """An XCom of ``ti`` as a downstream task's worker reads it."""
    from airflow.sdk.execution_time.comms import GetXCom
    from airflow.sdk.execution_time.xcom import XCom

    answer = await comms.asend(
        GetXCom(key=key, dag_id=ti.dag_id, run_id=ti.run_id, task_id=ti.task_id, map_index=-1)
    )
    return XCom.deserialize_value(answer)


def _only(events: list[Any]) -> Any:
    assert len(events) == 1, events
    return events[0]


def test_a_successful_job_ends_its_task_in_the_triggerer_as_the_worker_would(
    emulator: Emulator, comms: InProcessSupervisorComms, tmp_path: Path
) -> None:
    """The end event's XComs are what the worker's execute_complete returns and pushes for a
    twin job, the results zip is written to the URL, and the job is deleted last."""
    from airflow.triggers.base import TaskSuccessEvent

    ti = new_task_instance("deferred")
    submit(emulator, "end-1")
    submit(emulator, "end-2")
    plan = _end_plan("end-1", tmp_path)
    ended = _only(asyncio.run(collect(_trigger("end-1", ti, end=plan), timeout=60)))
    assert isinstance(ended, TaskSuccessEvent)
    assert ended.task_instance_state == "success"
    assert not ended.xcoms  # pushed as a worker pushes them, read back as a worker reads them
    assert asyncio.run(_pulled(comms, ti, "insight_job_url")) == "http://ui.example/jobs/end-1"
    assert asyncio.run(_pulled(comms, ti, "compute_job_id")) == "end-1"
    result = asyncio.run(_pulled(comms, ti, "return_value"))
    assert isinstance(result, dict)
    assert (tmp_path / "end-1" / "results.zip").read_bytes()[:2] == b"PK"
    assert "end-1" in _deletes(emulator)

    # The twin, resumed on the worker as with resume_on_worker=True.
    classic = _only(asyncio.run(collect(_trigger("end-2", ti), timeout=60)))
    assert not isinstance(classic, TaskSuccessEvent)
    operator = InsightJobOperator(
        task_id="twin",
        results_path=(tmp_path / "end-2" / "results.zip").as_uri(),
        on_finish="delete",
    )
    twin = operator.execute_complete({}, classic.payload)  # type: ignore[arg-type]
    # Equal but for the job's own ids (its scenario's URLs among them).
    assert set(result) == set(twin)
    for key in ("result_url", "run_log_url"):
        assert result.pop(key).startswith(emulator.base_url + "/api/scenarios/")
        assert twin.pop(key).startswith(emulator.base_url + "/api/scenarios/")
    assert json.loads(json.dumps(result).replace("end-1", "end-2")) == twin
    assert isinstance(result, dict) and result["status"] == "COMPLETED"


@pytest.mark.parametrize("why", ["failed job", "write fails"])
def test_what_the_triggerer_cannot_end_goes_back_to_the_worker(
    emulator: Emulator, comms: InProcessSupervisorComms, tmp_path: Path, why: str
) -> None:
    """A failed job (retries, AirflowFailException, failure callbacks stay the worker's), and an
    end step that fails here: the usual event, and the job is not deleted."""
    from airflow.triggers.base import TaskSuccessEvent

    ti = new_task_instance("deferred")
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    if why == "failed job":
        submit(emulator, "back-1", final_status="FAILED", model_status=None)
        plan = _end_plan("back-1", tmp_path)
    else:
        submit(emulator, "back-1")
        plan = _end_plan("back-1", tmp_path, results_path=(blocker / "results.zip").as_uri())
    event = _only(asyncio.run(collect(_trigger("back-1", ti, end=plan), timeout=60)))
    assert not isinstance(event, TaskSuccessEvent)
    assert event.payload["kind"] == "finished"
    assert outcome_from_event(event.payload).compute_job_id == "back-1"
    assert "back-1" not in _deletes(emulator)


def test_inline_under_dag_test_the_trigger_never_ends_the_task_itself(
    emulator: Emulator, tmp_path: Path
) -> None:
    """dag.test() resumes with the event's payload: an end event would lose the result."""
    from airflow.triggers.base import TaskSuccessEvent

    submit(emulator, "inline-1")
    trigger = InsightJobTrigger(
        insight_conn_id="insight_default",
        compute_job_id="inline-1",
        silence_limit_seconds=0.5,
        end=_end_plan("inline-1", tmp_path),
    )
    event = _only(asyncio.run(collect(trigger, timeout=60)))
    assert not isinstance(event, TaskSuccessEvent)
    assert outcome_from_event(event.payload).status == "COMPLETED"
    assert not (tmp_path / "inline-1").exists()
