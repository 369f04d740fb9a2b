"""InsightJobOperator.on_kill against the emulator, without a metadata DB."""

from __future__ import annotations

import threading
from typing import Any

from airflow_insight.emulator import Emulator
from airflow_insight.operators.insight import InsightJobOperator
from airflow_insight.transport.rest import InsightRestClient


class _MarkedFailed:
    """A task instance whose supervisor says a user marked it failed."""

    dag_id, run_id, task_id, map_index = "d", "r", "kill", -1

    def get_task_states(self, dag_id: str, **criteria: Any) -> dict[str, Any]:
        return {"r": {"kill": "failed"}}


#: Generous bound for a loaded 2-core machine; the cancel itself takes milliseconds.
JOIN_SECONDS = 20.0


def test_on_kill_needs_no_lock_the_interrupted_code_may_hold(emulator: Emulator) -> None:
    """Airflow calls on_kill from the SIGTERM handler, on the thread it interrupted, which may
    be minting a token in the hook's REST client (holding its token lock). on_kill must not
    wait for that lock: here another thread holds it while on_kill runs."""
    operator = InsightJobOperator(task_id="kill", job_id="kill-1", cancel_wait_seconds=10.0)
    shared = operator.hook.get_rest_client()
    document = shared.submit_job({"id": "kill-1", "computeJobType": "SOLVER"})
    assert document["id"] == "kill-1"
    operator._active_job_id = "kill-1"  # what execute sets while it follows the job
    operator._ti = _MarkedFailed()  # what execute sets; a user stopped this task
    killer = threading.Thread(target=operator.on_kill)
    with shared._token_lock:  # as if a token mint were under way when the signal came
        killer.start()
        killer.join(JOIN_SECONDS)
        stuck = killer.is_alive()
    killer.join(JOIN_SECONDS)
    assert not stuck, "on_kill waited for the shared REST client's token lock"
    assert [entry.compute_job_id for entry in emulator.record.of_kind("delete")] == ["kill-1"]
    emulator.wait_for_status("kill-1", {"CANCELLED"})
    with InsightRestClient(operator.settings) as rest:
        assert rest.get_job("kill-1")["status"] == "CANCELLED"


class _RunningThenMarkedFailed(_MarkedFailed):
    """The task instance execute gets: XComs go nowhere; a user marked it failed."""

    def xcom_push(self, key: str, value: Any) -> None:
        """The link's XComs are not this test's concern."""


def test_a_kill_during_a_blocking_follow_logs_in_order(emulator: Emulator, capfd: Any) -> None:
    """Airflow runs on_kill in the SIGTERM handler on the thread that follows the job; the
    follower then still holds the CANCELLING status it had not logged. The kill's "is now
    CANCELLED" is the last status line: the older ones are not logged after it."""
    import os
    import signal
    import time

    import pytest

    from airflow_insight.exceptions import JobCancelled

    operator = InsightJobOperator(task_id="kill", job_id="kill-order", cancel_wait_seconds=10.0)

    def on_term(signum: int, frame: object) -> None:  # what Airflow's task runner installs
        operator.on_kill()

    def send_sigterm_once_running() -> None:
        deadline = time.monotonic() + JOIN_SECONDS
        while time.monotonic() < deadline:
            if len(emulator.run_log("kill-order") or []) >= 3:
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(0.02)

    previous = signal.signal(signal.SIGTERM, on_term)
    killer = threading.Thread(target=send_sigterm_once_running, daemon=True)
    try:
        killer.start()
        with pytest.raises(JobCancelled):
            operator.execute(context={"ti": _RunningThenMarkedFailed()})  # type: ignore[arg-type]
    finally:
        signal.signal(signal.SIGTERM, previous)
        killer.join(JOIN_SECONDS)
    text = capfd.readouterr().out
    lines = [line for line in text.splitlines() if "kill-order" in line]
    now_cancelled = next(n for n, line in enumerate(lines) if "is now CANCELLED" in line)
    after = lines[now_cancelled + 1 :]
    assert not [line for line in after if ": status CANCELL" in line], "\n".join(lines)
    assert any("ended: CANCELLED" in line for line in after), "\n".join(lines)
