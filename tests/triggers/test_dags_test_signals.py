"""Issue 11 item 1, deferred mode: signals to a real ``airflow dags test`` (trigger inline).

A real process on a scratch SQLite AIRFLOW_HOME, the emulator as the server, real signals:
SIGINT (Ctrl-C) cancels the job the run started and ends the run; SIGTERM ends the run (before:
ignored for 30 s and more), leaves the job running and says how to cancel it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_insight.emulator import Emulator, EmulatorConfig, JobScript

DAGS = Path(__file__).parent / "dags"
#: A job that runs for minutes: only the signal can end the run in time.
LONG = JobScript(name="long", queued_seconds=0.01, log_lines=6000, lines_per_second=20.0)
#: Generous for a loaded 2-core machine: a run that ignores the signal takes forever.
EXIT_LIMIT_SECONDS = 90.0


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """An AIRFLOW_HOME of its own (migrated once) with only the signal DAGs in its folder."""
    home = tmp_path_factory.mktemp("airflow-home")
    dags = home / "dags"
    dags.mkdir()
    shutil.copy(DAGS / "signal_dags.py", dags / "signal_dags.py")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run(
        [str(airflow), "db", "migrate"], env=env, check=True, capture_output=True, timeout=600
    )
    yield env


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(ping_interval_seconds=1.0, default_script=LONG)) as running:
        yield running


def _start(
    env: dict[str, str], emulator: Emulator, dag_id: str, log: Path
) -> subprocess.Popen[bytes]:
    env = {**env, "AIRFLOW_CONN_INSIGHT_DEFAULT": emulator.airflow_connection_json()}
    airflow = Path(sys.executable).parent / "airflow"
    with log.open("wb") as out:
        # A process group of its own: the signal goes to this run only, never to pytest.
        return subprocess.Popen(
            [str(airflow), "dags", "test", dag_id],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_until_forwarding(process: subprocess.Popen[bytes], log: Path, job_id: str) -> None:
    """Until the inline trigger forwards run-log lines of the job (it is deferred, following)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"dags test ended early:\n{log.read_text()[-3000:]}")
        text = log.read_text(errors="replace")
        if "running trigger in line" in text and f"{job_id}: run-log line 5" in text:
            return
        time.sleep(0.5)
    process.kill()
    pytest.fail(f"the trigger never forwarded lines:\n{log.read_text()[-3000:]}")


def _end(process: subprocess.Popen[bytes]) -> float:
    """Seconds until the process exited (it is killed, and the test fails, past the limit)."""
    start = time.monotonic()
    try:
        process.wait(timeout=EXIT_LIMIT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        pytest.fail(f"dags test still running {EXIT_LIMIT_SECONDS:.0f} s after the signal")
    return time.monotonic() - start


def _signalled_run(
    env: dict[str, str], emulator: Emulator, tmp_path: Path, name: str, signum: int
) -> str:
    """Run DAG ``t_<name>``, send ``signum`` while it follows ``<name>-job``; its whole output."""
    log = tmp_path / f"{name}.log"
    process = _start(env, emulator, f"t_{name}", log)
    _wait_until_forwarding(process, log, f"{name}-job")
    os.kill(process.pid, signum)
    _end(process)
    return log.read_text(errors="replace")


def test_ctrl_c_cancels_the_job_it_started(
    airflow_home: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    text = _signalled_run(airflow_home, emulator, tmp_path, "sigint", signal.SIGINT)
    assert [e.compute_job_id for e in emulator.record.of_kind("delete")] == ["sigint-job"]
    emulator.wait_for_status("sigint-job", {"CANCELLED"})
    assert "Cancelling Insight compute job sigint-job: interrupted (SIGINT, Ctrl-C)" in text
    assert "Interrupted (Ctrl-C) while following Insight compute job 'sigint-job'" in text
    assert "KeyboardInterrupt" not in text


def test_sigterm_ends_the_run_and_leaves_the_job_with_how_to_cancel_it(
    airflow_home: dict[str, str], emulator: Emulator, tmp_path: Path
) -> None:
    text = _signalled_run(airflow_home, emulator, tmp_path, "sigterm", signal.SIGTERM)
    assert emulator.record.of_kind("delete") == []
    assert emulator.job("sigterm-job")["status"] == "EXECUTING"
    assert "SIGTERM: leaving Insight compute job sigterm-job running" in text
    assert f"DELETE {emulator.base_url}/" in text
