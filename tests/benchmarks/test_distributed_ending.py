"""The distributed ending benchmark's set-up, without the bed: the DAG file it writes parses in
real Airflow with one DAG per mode this code can run, each mode's jobs are held behind its own
gate, and a mode the code cannot run is skipped with its reason.

The measurement itself needs Postgres, Redis and every Airflow component
(``benchmarks/distributed.py --groups ending``); it is not run here.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "distributed"))

from distributed_bed import worker_runs_in  # noqa: E402

from airflow_insight.emulator import Emulator, EmulatorConfig  # noqa: E402
from airflow_insight.operators.insight import InsightJobOperator  # noqa: E402
from benchmarks import distributed_ending  # noqa: E402

#: A Celery worker's output (Airflow 3.3, CeleryExecutor) for one task instance run twice (its
#: start and its resume) and another still running; long records shortened where marked.
WORKER_OUTPUT = """\
2026-12-07T05:08:10.572794Z [info] [65df70da-e606-46b7-88a9-e6559f787f04] Executing workload \
in Celery: dag_rel_path=PurePosixPath('bench_ending_dags.py') (...) ti=TaskInstanceDTO(\
id=UUID('01a24ee6-f558-7c8c-a12f-59e011e1dceb'), task_id='solve_000', (...) type='ExecuteTask'
2026-12-07T05:08:10.573511Z [info] [bb1bf56f-5edb-42d0-a8ba-3acc3996b516] Executing workload \
in Celery: (...) ti=TaskInstanceDTO(id=UUID('01a24ee6-f55a-7719-9a19-9f6046d6fc58'), (...)
2026-12-07T05:08:17.385339Z [info] Workload finished              [supervisor] \
duration=6.484518105000461 exit_code=0 final_state=deferred workload_id=01a24ee6-f558-7c8c
2026-12-07T05:08:17.412228Z [info] Task execute_workload[65df70da-e606-46b7-88a9-e6559f787f04] \
succeeded in 7.8955496460002905s: None [celery.app.trace] loc=trace.py:128
2026-12-07T05:08:40.100000Z [info] [0949ae81-3112-4259-aa55-6dd19d483718] Executing workload \
in Celery: (...) ti=TaskInstanceDTO(id=UUID('01a24ee6-f558-7c8c-a12f-59e011e1dceb'), (...)
2026-12-07T05:08:43.000000Z [info] Task execute_workload[0949ae81-3112-4259-aa55-6dd19d483718] \
succeeded in 2.5s: None [celery.app.trace] loc=trace.py:128
"""


def _dag_bag(folder: Path) -> object:
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow before 3.2 keeps it with the models
        from airflow.models.dagbag import DagBag
    return DagBag(dag_folder=str(folder))


def test_one_dag_per_runnable_mode_with_its_arguments_and_its_own_gate(tmp_path: Path) -> None:
    emulator = Emulator(EmulatorConfig())  # not started: only its rules are read
    modes, source = distributed_ending.prepare(tmp_path, emulator, jobs=3)
    (tmp_path / "dags").mkdir()
    (tmp_path / "dags" / "ending.py").write_text(source)
    bag = _dag_bag(tmp_path / "dags")

    assert bag.import_errors == {}  # type: ignore[attr-defined]
    runnable = [m for m in modes if m.skipped is None]
    assert sorted(bag.dags) == sorted(m.dag_id for m in runnable)  # type: ignore[attr-defined]
    assert [m.key for m in modes] == ["worker_resume", "trigger_end", "trigger_start"]
    assert modes[0].skipped is None, "the before mode runs on every version of the operator"
    for mode in runnable:
        tasks = bag.dags[mode.dag_id].tasks  # type: ignore[attr-defined]
        assert len(tasks) == 3 and all(task.deferrable for task in tasks)
        payload = tasks[0].payload
        assert (payload is None) == (mode.key == "trigger_start"), (mode.key, payload)
        script = emulator.hub.script_for(f"{mode.dag_id}.solve_000-0123456789")
        assert script.hold == mode.key


def test_modes_the_operator_cannot_run_are_skipped_with_the_reason(tmp_path: Path) -> None:
    modes = {m.key: m for m in distributed_ending.modes(tmp_path)}
    has_flag = "resume_on_worker" in inspect.signature(InsightJobOperator.__init__).parameters
    assert (modes["trigger_end"].skipped is None) == has_flag
    if not has_flag:
        assert "resume_on_worker" in (modes["trigger_end"].skipped or "")
    asks = "start_in_triggerer" in inspect.signature(InsightJobOperator.__init__).parameters
    extra = {"start_in_triggerer": True} if asks else {}
    starts = bool(InsightJobOperator(task_id="p", deferrable=True, **extra).start_from_trigger)
    assert (modes["trigger_start"].skipped is None) == starts
    assert ("resume_on_worker=True" in modes["worker_resume"].arguments) == has_flag


def test_worker_slot_seconds_are_celery_runtimes_joined_to_the_task_instance() -> None:
    runs = worker_runs_in([WORKER_OUTPUT])
    assert runs == {"01a24ee6-f558-7c8c-a12f-59e011e1dceb": [7.8955496460002905, 2.5]}
