"""End to end with real Airflow components: api-server, scheduler, dag-processor and triggerer.

Each component runs in its own process group with free ports and a temp SQLite AIRFLOW_HOME; the
emulator (started here) is the Insight server, reached through an ``AIRFLOW_CONN_*`` variable.
A deferrable ``InsightJobOperator`` must forward run-log lines while deferred and succeed; a second
run is marked failed while deferred, and the emulator must see the job cancelled (the trigger's
``on_kill``). Slow (about 40 s); ``INSIGHT_SKIP_E2E=1`` skips it for a quick local run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_insight.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Emulator, JobScript

pytestmark = [
    pytest.mark.skipif(os.environ.get("INSIGHT_SKIP_E2E") == "1", reason="INSIGHT_SKIP_E2E=1"),
    pytest.mark.timeout(400),
]

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
QUICK = JobScript(name="e2e-quick", log_lines=12, lines_per_second=4.0, batch_size=1)
SLOW = dataclasses.replace(QUICK, name="e2e-slow", log_lines=2000, lines_per_second=5.0)

DAG_FILE = """
import datetime
from airflow.sdk import dag
from airflow_insight.operators.insight import InsightJobOperator

for name in ("e2e_quick", "e2e_slow"):
    @dag(dag_id=name, schedule=None, start_date=datetime.datetime(2026, 1, 1), catchup=False)
    def _dag():
        InsightJobOperator(task_id="solve", deferrable=True, silence_limit_seconds=5.0,
                           execution_timeout=datetime.timedelta(minutes=5))
    globals()[name] = _dag()
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait(what: str, check: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = check()
        except requests.RequestException:
            result = None
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def airflow(tmp_path: Path) -> Iterator[tuple[Emulator, str, dict[str, str], Path]]:
    """Emulator + the four components; yields (emulator, api base URL, auth headers, home)."""
    emulator = Emulator().start()
    emulator.add_script("e2e_quick*", QUICK)
    emulator.add_script("e2e_slow*", SLOW)
    home = tmp_path / "airflow"
    (home / "dags").mkdir(parents=True)
    (home / "dags" / "e2e_dags.py").write_text(DAG_FILE)
    port = _free_port()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API_AUTH__JWT_SECRET": "e2e-test-jwt-secret-" + "x" * 32,
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW_CONN_INSIGHT_DEFAULT": json.dumps(
            {
                "conn_type": "insight",
                "host": emulator.base_url,
                "login": DEMO_CLIENT_ID,
                "password": DEMO_CLIENT_SECRET,
            }
        ),
    }
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True)
    processes = [
        subprocess.Popen(
            [AIRFLOW, *command],
            env=env,
            start_new_session=True,  # its own process group, signalled as a whole below
            stdout=(home / f"{command[0]}.out").open("wb"),
            stderr=subprocess.STDOUT,
        )
        for command in (
            ["api-server", "--port", str(port)],
            ["scheduler"],
            ["dag-processor"],
            ["triggerer"],
        )
    ]
    api = f"http://127.0.0.1:{port}"
    try:
        _wait(
            "the api-server", lambda: requests.get(f"{api}/api/v2/monitor/health", timeout=2).ok, 90
        )
        token = requests.get(f"{api}/auth/token", timeout=5).json()["access_token"]
        yield emulator, api, {"Authorization": f"Bearer {token}"}, home
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in processes:
            with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(process.pid, signal.SIGKILL)
        emulator.stop()


def _trigger_run(api: str, headers: dict[str, str], dag_id: str) -> str:
    _wait(
        f"DAG {dag_id}",
        lambda: requests.get(f"{api}/api/v2/dags/{dag_id}", headers=headers, timeout=5).ok,
        120,
    )
    response = requests.post(
        f"{api}/api/v2/dags/{dag_id}/dagRuns",
        headers=headers,
        json={"logical_date": None},
        timeout=10,
    )
    response.raise_for_status()
    run_id: str = response.json()["dag_run_id"]
    return run_id


def _ti_state(api: str, headers: dict[str, str], dag_id: str, run_id: str) -> str | None:
    url = f"{api}/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/solve"
    state: str | None = requests.get(url, headers=headers, timeout=5).json().get("state")
    return state


def _logs_text(home: Path) -> str:
    return "\n".join(
        path.read_text(errors="replace") for path in (home / "logs").rglob("*") if path.is_file()
    )


def test_deferred_operator_streams_succeeds_and_is_cancelled_when_marked_failed(
    airflow: tuple[Emulator, str, dict[str, str], Path],
) -> None:
    emulator, api, headers, home = airflow

    run_id = _trigger_run(api, headers, "e2e_quick")
    state = _wait(
        "e2e_quick to end",
        lambda: (
            _ti_state(api, headers, "e2e_quick", run_id) in ("success", "failed", "upstream_failed")
            and _ti_state(api, headers, "e2e_quick", run_id)
        ),
        180,
    )
    assert state == "success", (home / "scheduler.out").read_text()[-3000:]
    logs = _logs_text(home)
    job_ids = [entry.compute_job_id for entry in emulator.record.of_kind("subscribe")]
    quick_job = next(job for job in job_ids if job and job.startswith("e2e_quick"))
    assert "InsightJobTrigger.run_log" in logs  # lines were forwarded while deferred
    for line in emulator.run_log(quick_job):
        assert line in logs
    assert DEMO_CLIENT_SECRET not in logs

    run_id = _trigger_run(api, headers, "e2e_slow")
    _wait(
        "e2e_slow to defer", lambda: _ti_state(api, headers, "e2e_slow", run_id) == "deferred", 180
    )
    time.sleep(2)  # a few lines flow through the trigger
    response = requests.patch(
        f"{api}/api/v2/dags/e2e_slow/dagRuns/{run_id}/taskInstances/solve",
        headers=headers,
        json={"new_state": "failed"},
        timeout=10,
    )
    response.raise_for_status()
    deletes = _wait(
        "the cancellation",
        lambda: [
            entry
            for entry in emulator.record.of_kind("delete")
            if (entry.compute_job_id or "").startswith("e2e_slow")
        ],
        60,
    )
    assert len(deletes) >= 1
    slow_job = deletes[0].compute_job_id
    assert slow_job is not None
    emulator.wait_for_status(slow_job, {"CANCELLED", "DELETED"}, timeout_seconds=10)
