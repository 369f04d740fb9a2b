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
