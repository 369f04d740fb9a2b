"""Which job a trigger that starts its task's job follows: the pure decision and the ids."""

from __future__ import annotations

import types

import pytest

from airflow_insight.protocol.reattach import (
    Reattach,
    Submit,
    TaskIdentity,
    choose_started_job,
    derive_job_id,
)

OWN, EARLIER = "dag.task-own", "dag.task-earlier"
RUNNING = {"id": "x", "status": "EXECUTING"}
DONE = {"id": "x", "status": "COMPLETED", "modelStatus": "OK"}
FAILED = {"id": "x", "status": "FAILED"}


@pytest.mark.parametrize(
    ("found_id", "document", "expected"),
    [
        (None, None, Submit(OWN)),
        (OWN, RUNNING, Reattach(OWN, RUNNING)),  # rebuilt while its job runs
        (OWN, DONE, Reattach(OWN, DONE)),  # rebuilt after its job ended: never a second submit
        (OWN, FAILED, Reattach(OWN, FAILED)),
        (EARLIER, RUNNING, Reattach(EARLIER, RUNNING)),  # a retry re-attaches
        (EARLIER, DONE, Submit(OWN)),  # a finished earlier job is not reused
        (EARLIER, FAILED, Submit(OWN)),
    ],
)
def test_choose_started_job(found_id: str | None, document: dict | None, expected: object) -> None:
    decision = choose_started_job(own_id=OWN, found_id=found_id, document=document, accepted={"OK"})
    assert decision == expected


def test_the_identity_derives_the_operator_s_ids_newest_earlier_try_first() -> None:
    ti = types.SimpleNamespace(dag_id="d", run_id="r", task_id="t", map_index=None, try_number=3)
    identity = TaskIdentity.of(ti)
    assert identity == TaskIdentity("d", "r", "t", -1)
    assert identity.job_id(3) == derive_job_id("d", "r", "t", -1, 3)
    assert identity.earlier_job_ids(3) == [identity.job_id(2), identity.job_id(1)]
    assert identity.earlier_job_ids(1) == []
