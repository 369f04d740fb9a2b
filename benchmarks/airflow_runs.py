"""Real Airflow runs for the benchmarks: ``dag.test()`` in a child process per run.

One temporary ``AIRFLOW_HOME`` (SQLite) is migrated once per benchmark session; every run is a
fresh ``python <dag file>`` process with its own DAGs folder holding only that file, so runs do not
pollute each other and parse nothing else. The DAG file calls :func:`run_dag_test`, which times
``dag.test()``, reads the task instances' start and end from the metadata DB and prints one
``BENCH-RESULT {json}`` line. Under ``dag.test()`` the task log (and the inline trigger's log) goes
to stdout, one structlog line per record with its own timestamp: :func:`run_log_stats` reads the
run-log lines out of it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

RESULT_MARKER = "BENCH-RESULT "
_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z")
#: The line text the benchmark job scripts write (see ``jobs.flood_script``).
RUN_LOG_LINE = "bench run-log line"


class AirflowHome:
    """A scratch ``AIRFLOW_HOME`` with a migrated SQLite DB; removed on :meth:`close`."""

    def __init__(self) -> None:
        self.path = tempfile.mkdtemp(prefix="insight-bench-airflow-")
        self._migrated = False

    def env(self, dags_folder: str | None = None, **extra: str) -> dict[str, str]:
        """The environment for a child process using this home."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
        env.update(
            AIRFLOW_HOME=self.path,
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__UNIT_TEST_MODE="False",
            AIRFLOW__CORE__DAGS_FOLDER=dags_folder or os.path.join(self.path, "dags"),
            PYTHONPATH=_project_root() + os.pathsep + env.get("PYTHONPATH", ""),
        )
        env.update(extra)
        return env

    def migrate(self) -> float:
        """Create the metadata DB once; returns the seconds it took."""
        if self._migrated:
            return 0.0
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", "from airflow.utils import db; db.initdb()"],
            env=self.env(),
            check=True,
            capture_output=True,
            timeout=300,
        )
        self._migrated = True
        return time.perf_counter() - started

    def run_dag_file(
        self, name: str, source: str, env: Mapping[str, str], timeout_seconds: float = 600.0
    ) -> DagRunResult:
        """Write ``source`` as the only file of a new DAGs folder and run it with ``python``."""
        self.migrate()
        folder = os.path.join(self.path, "dags", f"{name}-{time.monotonic_ns()}")
        os.makedirs(folder)
        path = os.path.join(folder, f"{name}.py")
        with open(path, "w") as handle:
            handle.write(source)
        started = time.perf_counter()
        completed = subprocess.run(
            [sys.executable, path],
            env=self.env(folder, **env),
            capture_output=True,
            text=True,
            timeout=timeout_seconds,
        )
        elapsed = time.perf_counter() - started
        return DagRunResult(completed.returncode, completed.stdout, completed.stderr, elapsed)

    def close(self) -> None:
        """Remove the home."""
        shutil.rmtree(self.path, ignore_errors=True)


class DagRunResult:
    """What one ``dag.test()`` child printed."""

    def __init__(self, returncode: int, stdout: str, stderr: str, process_seconds: float) -> None:
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.process_seconds = process_seconds
        self.result: dict[str, Any] = {}
        for line in (stderr + "\n" + stdout).splitlines():
            if line.startswith(RESULT_MARKER):
                self.result = json.loads(line[len(RESULT_MARKER) :])

    @property
    def ok(self) -> bool:
        """True when the child ran ``dag.test()`` and every task succeeded."""
        states = self.result.get("task_states", {})
        return self.returncode == 0 and bool(states) and set(states.values()) == {"success"}

    def failure(self) -> str:
        """A short explanation for a failed run (the tail of its output)."""
        tail = (self.stderr.strip().splitlines() or self.stdout.strip().splitlines() or [""])[-8:]
        return f"exit {self.returncode}, states {self.result.get('task_states')}: " + " | ".join(
            tail
        )


def run_log_stats(stdout: str, expected: int, text: str = RUN_LOG_LINE) -> dict[str, Any]:
    """Count the numbered run-log lines in a ``dag.test()`` log and the rate they were logged at.

    The rate is (lines - 1) / (timestamp of the last one - timestamp of the first one), from the
    timestamps the task logger itself wrote on each record.
    """
    pattern = re.compile(re.escape(text) + r" (\d+)\b")
    counts: Counter[int] = Counter()
    first: dt.datetime | None = None
    last: dt.datetime | None = None
    for line in stdout.splitlines():
        match = pattern.search(line)
        if match is None:
            continue
        counts[int(match.group(1))] += 1
        stamp = _TIMESTAMP.match(line)
        if stamp is not None:
            when = dt.datetime.fromisoformat(stamp.group(1))
            first = when if first is None else first
            last = when
    total = sum(counts.values())
    distinct = sum(1 for n in counts if 0 <= n < expected)
    span = (last - first).total_seconds() if first and last else 0.0
    return {
        "lines_expected": expected,
        "lines_logged": total,
        "lost": expected - distinct,
        "duplicated": total - len(counts),
        "span_seconds": round(span, 4),
        "lines_per_second": round((total - 1) / span, 1) if span > 0 else 0.0,
    }


def run_dag_test(dag: Any) -> None:
    """Run ``dag.test()`` and print ``BENCH-RESULT`` (call it from a DAG file's ``__main__``)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    started = time.perf_counter()
    dag_run = dag.test()
    wall = time.perf_counter() - started
    states: dict[str, str] = {}
    durations: dict[str, float] = {}
    with create_session() as session:
        for ti in session.query(TaskInstance).filter(
            TaskInstance.dag_id == dag.dag_id, TaskInstance.run_id == dag_run.run_id
        ):
            states[ti.task_id] = str(getattr(ti.state, "value", ti.state))
            if ti.start_date and ti.end_date:
                durations[ti.task_id] = (ti.end_date - ti.start_date).total_seconds()
    result = {"dag_test_seconds": wall, "task_states": states, "task_seconds": durations}
    print(RESULT_MARKER + json.dumps(result), file=sys.__stderr__, flush=True)


def _project_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
