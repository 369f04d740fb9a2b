"""How long a solve waits at its first callback when the task defers, against a blocking task.

A job with progress callbacks pauses the solve at every callback until the client answers. A
blocking task answers from the worker at once; a deferrable task submits, hands the job to the
triggerer, and nothing answers until the trigger has started and subscribed: the solve waits
that long at its first callback. This measures the wait on real parts: the bundled emulator
(this process, its own thread) solving a model with xpress, and Airflow in one of two ways:

* ``dag.test()`` (default): one child process per run (``benchmarks.airflow_runs``), blocking and
  deferrable; ``dag.test()`` runs the trigger inline in the task's process, so this is the wait
  without the scheduler and triggerer in between.
* ``--triggerer``: a real api-server, scheduler, dag-processor and triggerer (LocalExecutor,
  SQLite), deferrable only, the runs one after the other: the first task of the first run is the
  triggerer's first trigger (``cold``), every later one finds it running (``warm``).
  With ``--payload-url`` the model is given as a ``file://`` URL, so on Airflow 3.3 on the tasks
  start in the triggerer and their trigger submits on its own socket: no wait is expected.

Each run's DAG holds two tasks of the same solve, one after the other. Both figures come from the
emulator's record on its own clock: when the solve sent its first APP_MESSAGE (held by the
emulator while no client is subscribed to the job) and when its answer arrived (and, for
comparison, the median answer time of the later callbacks).

    .venv/bin/python -m benchmarks.deferral_pause                   # dag.test(), 3 runs a mode
    .venv/bin/python -m benchmarks.deferral_pause --triggerer       # real components, 3 runs
    .venv/bin/python -m benchmarks.deferral_pause --triggerer --payload-url  # started there
    .venv/bin/python -m benchmarks.deferral_pause --runs 1 \\
        --model example_dags/models/facility_location --pictures /tmp/pictures

Prints one line per task and a summary; ``--json PATH`` writes the figures, ``--pictures DIR``
the progress pictures the tasks drew (``dag.test()`` mode). Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from airflow_insight.emulator import Emulator, EmulatorConfig
from benchmarks.airflow_runs import AirflowHome, DagRunResult

AIRFLOW = str(Path(sys.executable).with_name("airflow"))

DEFAULT_MODEL = (
    Path(__file__).resolve().parent.parent / "example_dags/models/fixed_charge_transport"
)
TASKS = ("first", "second")

DAG_SOURCE = """
import os

import pendulum
from airflow.sdk import dag

from airflow_insight.operators.insight import InsightJobOperator
from airflow_insight.progress import StopAtGap
from benchmarks.airflow_runs import run_dag_test

DEFERRABLE = os.environ["BENCH_DEFERRABLE"] == "1"
PICTURES = os.environ.get("BENCH_PICTURES") or None


@dag(
    dag_id="bench_deferral_pause",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
)
def bench_deferral_pause():
    previous = None
    for name in ("first", "second"):
        solve = InsightJobOperator(
            task_id=name,
            job_request={"computeJobType": "SOLVER", "solver": {"problemType": "MIP"}},
            payload=os.environ["BENCH_MODEL"],
            start_in_triggerer=True,
            solver_progress=True,
            stop_rules=[StopAtGap(float(os.environ["BENCH_GAP"]))],
            deferrable=DEFERRABLE,
            progress_plot_path=(
                None if PICTURES is None
                else f"{PICTURES}/{os.environ['BENCH_LABEL']}-{name}-progress.png"
            ),
        )
        if previous is not None:
            previous >> solve
        previous = solve


DAG = bench_deferral_pause()

if __name__ == "__main__":
    run_dag_test(DAG)
"""


def _exchange_times(emulator: Emulator, job_id: str) -> dict[str, Any]:
    """The first callback's wait for its answer, and the median of the later ones (ms)."""
    waits = []
    for exchange in emulator.record.app_message_exchanges(job_id):
        # From when the solve asked (sentAt[0]: queued for the socket, or held until one
        # subscribes) to when its answer arrived: the time the solve stood still.
        asked, answered = exchange["sentAt"], exchange["answeredAt"]
        if asked and answered is not None:
            waits.append(1000.0 * (answered - asked[0]))
    if not waits:
        return {"callbacks": 0}
    later = waits[1:]
    return {
        "callbacks": len(waits),
        "first_callback_wait_ms": round(waits[0], 1),
        "later_callbacks_median_ms": round(statistics.median(later), 1) if later else None,
    }


def _job_of(emulator: Emulator, task_id: str, earlier: set[str]) -> str | None:
    """The job this run's ``task_id`` submitted (the emulator keeps every run's jobs)."""
    for job_id in emulator.hub.jobs:
        if job_id not in earlier and f".{task_id}-" in job_id:
            return job_id
    return None


def run_mode(
    home: AirflowHome,
    emulator: Emulator,
    *,
    deferrable: bool,
    model: Path,
    gap: float,
    run: int,
    pictures: str | None,
) -> list[dict[str, Any]]:
    """One ``dag.test()`` of the two-task DAG; a figure per task."""
    label = f"{model.name}-{'deferrable' if deferrable else 'blocking'}-{run}"
    env = {
        "AIRFLOW_CONN_INSIGHT_DEFAULT": emulator.airflow_connection_json(),
        "BENCH_DEFERRABLE": "1" if deferrable else "0",
        "BENCH_MODEL": str(model),
        "BENCH_GAP": str(gap),
        "BENCH_LABEL": label,
        "BENCH_PICTURES": pictures or "",
    }
    earlier = set(emulator.hub.jobs)
    result: DagRunResult = home.run_dag_file("bench_deferral_pause", DAG_SOURCE, env)
    if not result.ok:
        return [{"mode": label, "error": result.failure()}]
    figures = []
    for position, task_id in zip(("cold", "warm"), TASKS, strict=True):
        job_id = _job_of(emulator, task_id, earlier)
        times = {} if job_id is None else _exchange_times(emulator, job_id)
        figures.append(
            {
                "mode": "deferrable" if deferrable else "blocking",
                "task": f"{task_id} ({position})" if deferrable else task_id,
                "run": run,
                **times,
            }
        )
    return figures


# --------------------------------------------------------------------------- real triggerer


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _until(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if result := check():
                return result
        time.sleep(0.5)
    raise RuntimeError(f"timed out waiting for {what}")


class Components:
    """api-server, scheduler, dag-processor and triggerer on a scratch home (LocalExecutor), as
    a small deployment runs them; the triggerer starts with them, so the first deferred task is
    its first trigger (cold), the later ones find it running (warm)."""

    def __init__(self, home: AirflowHome, dags_folder: str, extra: dict[str, str]) -> None:
        port = _free_port()
        self.api = f"http://127.0.0.1:{port}"
        self.env = home.env(
            dags_folder,
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.api}/execution/",
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__PORT=str(port),
            AIRFLOW__API_AUTH__JWT_SECRET="bench-deferral-pause-" + "x" * 32,
            AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(_free_port()),
            AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(_free_port()),
            **extra,
        )
        self._logs = Path(home.path)
        self._processes: list[subprocess.Popen[bytes]] = []
        self.headers: dict[str, str] = {}

    def start(self) -> None:
        """Start the four components and wait until the api-server answers."""
        for command in ("api-server", "scheduler", "dag-processor", "triggerer"):
            output = (self._logs / f"{command}.out").open("wb")
            self._processes.append(
                subprocess.Popen(
                    [AIRFLOW, command],
                    env=self.env,
                    start_new_session=True,  # its own process group, stopped as a whole
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            )
        health = f"{self.api}/api/v2/monitor/health"
        _until("the api-server", lambda: requests.get(health, timeout=2).ok, 180)
        token = requests.get(f"{self.api}/auth/token", timeout=5).json()["access_token"]
        self.headers = {"Authorization": f"Bearer {token}"}

    def stop(self) -> None:
        """Stop every component's process group (SIGTERM, then SIGKILL after 15 s)."""
        for process in self._processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in self._processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(15)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

    def run_dag(self, dag_id: str) -> str:
        """Trigger one run over REST and wait for its end; its state."""
        dag_url = f"{self.api}/api/v2/dags/{dag_id}"
        _until(dag_id, lambda: requests.get(dag_url, headers=self.headers, timeout=5).ok, 180)
        posted = requests.post(
            f"{dag_url}/dagRuns", headers=self.headers, json={"logical_date": None}, timeout=10
        )
        posted.raise_for_status()
        run_url = f"{dag_url}/dagRuns/{posted.json()['dag_run_id']}"

        def ended() -> str | None:
            state = requests.get(run_url, headers=self.headers, timeout=5).json()["state"]
            return state if state in ("success", "failed") else None

        state: str = _until(f"the run of {dag_id}", ended, 900)
        return state


def run_with_triggerer(
    home: AirflowHome,
    emulator: Emulator,
    *,
    model: Path,
    gap: float,
    runs: int,
    payload_url: bool = False,
) -> list[dict[str, Any]]:
    """``runs`` runs of the deferrable DAG on real components; a figure per task.

    ``payload_url``: the model as a ``file://`` URL, which lets Airflow 3.3 on start the tasks in
    the triggerer (a local path starts them on a worker)."""
    home.migrate()
    folder = Path(home.path) / "dags" / "components"
    folder.mkdir(parents=True)
    (folder / "bench_deferral_pause.py").write_text(DAG_SOURCE)
    extra = {
        "AIRFLOW_CONN_INSIGHT_DEFAULT": emulator.airflow_connection_json(),
        "BENCH_DEFERRABLE": "1",
        "BENCH_MODEL": model.as_uri() if payload_url else str(model),
        "BENCH_GAP": str(gap),
    }
    figures = []
    components = Components(home, str(folder), extra)
    try:
        components.start()
        for run in range(1, runs + 1):
            earlier = set(emulator.hub.jobs)
            state = components.run_dag("bench_deferral_pause")
            for task_id in TASKS:
                job_id = _job_of(emulator, task_id, earlier)
                cold = run == 1 and task_id == TASKS[0]
                figure = {
                    "mode": "triggerer",
                    "task": f"{task_id} ({'cold' if cold else 'warm'})",
                    "run": run,
                    "dag_run": state,
                    **({} if job_id is None else _exchange_times(emulator, job_id)),
                }
                print(json.dumps(figure), flush=True)
                figures.append(figure)
    finally:
        components.stop()
    return figures


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }


def _summary(figures: list[dict[str, Any]]) -> list[str]:
    lines = []
    cases = (
        ("blocking", "first"),
        ("deferrable", "first (cold)"),
        ("deferrable", "second (warm)"),
        ("triggerer", "first (cold)"),
        ("triggerer", "warm"),
    )
    for mode, task in cases:
        waits = [
            figure["first_callback_wait_ms"]
            for figure in figures
            if figure.get("mode") == mode
            and task in figure.get("task", "")
            and "first_callback_wait_ms" in figure
        ]
        if waits:
            lines.append(
                f"{mode:<10} {task:<13} task: first callback waited median "
                f"{statistics.median(waits):8.1f} ms (min {min(waits):.1f}, max {max(waits):.1f},"
                f" {len(waits)} runs)"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="dag.test() runs per mode")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="a model folder")
    # The wait is at the first callback: a short solve measures it as well as a long one.
    parser.add_argument("--gap", type=float, default=0.05, help="StopAtGap target (0.05 = 5 %%)")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--pictures", help="the tasks write their progress pictures here")
    parser.add_argument(
        "--triggerer",
        action="store_true",
        help="deferred runs on a real api-server, scheduler, dag-processor and triggerer instead",
    )
    parser.add_argument(
        "--payload-url",
        action="store_true",
        help="with --triggerer: the model as a file:// URL (the tasks start in the triggerer)",
    )
    arguments = parser.parse_args(argv)
    model = arguments.model.resolve()
    pictures = None if arguments.pictures is None else str(Path(arguments.pictures).resolve())
    machine = _machine()
    home = AirflowHome()
    figures: list[dict[str, Any]] = []
    try:
        with Emulator(EmulatorConfig(record_limit=None)) as emulator:
            if arguments.triggerer:
                figures = run_with_triggerer(
                    home,
                    emulator,
                    model=model,
                    gap=arguments.gap,
                    runs=arguments.runs,
                    payload_url=arguments.payload_url,
                )
            for run in range(1, 0 if arguments.triggerer else arguments.runs + 1):
                for deferrable in (False, True):
                    for figure in run_mode(
                        home,
                        emulator,
                        deferrable=deferrable,
                        model=model,
                        gap=arguments.gap,
                        run=run,
                        pictures=pictures,
                    ):
                        figures.append(figure)
                        print(json.dumps(figure), flush=True)
    finally:
        home.close()
    machine["load_average_end"] = [round(value, 2) for value in os.getloadavg()]
    print(f"machine: {json.dumps(machine)}")
    for line in _summary(figures):
        print(line)
    if arguments.json:
        document = {"machine": machine, "model": model.name, "figures": figures}
        Path(arguments.json).write_text(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
