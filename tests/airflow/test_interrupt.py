"""Ctrl-C during a blocking wait: a real ``airflow dags test`` process gets a real SIGINT.

The job must be cancelled on the server (one DELETE, status CANCELLED), the task's failure must
name the job and say it was cancelled, no retry may submit another job (the DAG has retries),
and the process must end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from dag_support import jobs_of

from airflow_insight.emulator import Emulator

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
#: Bounds for a loaded 2-core machine: `airflow dags test` alone takes ~10 s to start a task.
START_SECONDS = 120.0
EXIT_SECONDS = 60.0


def _streaming_job(emulator: Emulator, process: subprocess.Popen[bytes], out: Path) -> str:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, out.read_text(errors="replace")[-3000:]
        jobs = jobs_of(emulator, "t_interrupt")
        if jobs and len(emulator.run_log(jobs[0])) >= 5:
            return jobs[0]
        time.sleep(0.1)
    raise AssertionError("the job did not start streaming:\n" + out.read_text()[-3000:])


def _as_a_foreground_job() -> None:
    """In the child: SIGINT back to its default, as a shell does for a foreground job. A parent
    started in the background by a non-interactive shell ignores SIGINT, the ignore is inherited
    across exec, and Python then installs no KeyboardInterrupt handler: Ctrl-C would be ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_cancels_the_job_and_names_it(emulator: Emulator, tmp_path: Path) -> None:
    out = tmp_path / "dags-test.out"
    with out.open("wb") as sink:
        process = subprocess.Popen(
            [AIRFLOW, "dags", "test", "t_interrupt"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal's foreground job
            preexec_fn=_as_a_foreground_job,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        job_id = _streaming_job(emulator, process, out)
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C sends to the foreground group
        try:
            process.wait(EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                "still running after SIGINT:\n"
                + "\n".join(
                    line
                    for line in out.read_text(errors="replace").splitlines()
                    if "run-log line" not in line
                )[-6000:]
            ) from None
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    text = out.read_text(errors="replace")
    assert emulator.job(job_id)["status"] == "CANCELLED", text[-3000:]
    deletes = [e for e in emulator.record.of_kind("delete") if e.compute_job_id == job_id]
    assert len(deletes) == 1
    message = f"Interrupted (Ctrl-C): Insight compute job {job_id} was cancelled (status CANCELLED)"
    assert message in text, text[-3000:]
    assert jobs_of(emulator, "t_interrupt") == [job_id]  # no retry submitted another job
    assert "AirflowFailException: " + message in text
    assert "Failure caused by \n" not in text  # what users saw before: an empty reason
    print("\n".join(line for line in text.splitlines() if "Interrupted" in line)[:2000])
