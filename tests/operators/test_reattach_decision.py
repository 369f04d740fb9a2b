"""The re-attach decision (airflow_insight.protocol.reattach), as a table: no I/O, no Airflow."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_insight.protocol.reattach import (
    Reattach,
    Reuse,
    Submit,
    choose_job,
    earlier_try_numbers,
    is_terminal_document,
    job_to_look_up,
)

ACCEPTED = frozenset({"OK"})
RUNNING = {"id": "old", "status": "EXECUTING"}
DONE_OK = {"id": "old", "status": "COMPLETED", "modelStatus": "OK"}
DONE_ERROR = {"id": "old", "status": "COMPLETED", "modelStatus": "ERROR"}
DONE_NO_MODEL_STATUS = {"id": "old", "status": "COMPLETED"}
FAILED = {"id": "old", "status": "FAILED"}
CANCELLED = {"id": "old", "status": "CANCELLED"}
FIXED_RUNNING = {"id": "fixed", "status": "QUEUED"}
FIXED_DONE = {"id": "fixed", "status": "COMPLETED", "modelStatus": "OK"}


@pytest.mark.parametrize(
    ("stored", "fixed", "fresh", "document", "expected"),
    [
        # Nothing stored, derived ids: a first try submits its own job.
        (None, None, "new", None, Submit("new")),
        # The stored job is gone (404) or never existed: submit a fresh one.
        ("old", None, "new", None, Submit("new")),
        # The stored job still runs: re-attach to it (a crash or a deploy killed the last try).
        ("old", None, "new", RUNNING, Reattach("old", RUNNING)),
        # The stored job succeeded: reuse its result, run nothing again.
        ("old", None, "new", DONE_OK, Reuse("old", DONE_OK)),
        ("old", None, "new", DONE_NO_MODEL_STATUS, Reuse("old", DONE_NO_MODEL_STATUS)),
        # The stored job ended badly: a fresh job under this try's id.
        ("old", None, "new", DONE_ERROR, Submit("new")),
        ("old", None, "new", FAILED, Submit("new")),
        ("old", None, "new", CANCELLED, Submit("new")),
        # A fixed id without a store: its running job is re-attached to...
        (None, "fixed", "fixed", FIXED_RUNNING, Reattach("fixed", FIXED_RUNNING)),
        # ...and its finished job (not known to be this task's) is deleted, the id reused.
        (None, "fixed", "fixed", FIXED_DONE, Submit("fixed", delete_first="fixed")),
        (None, "fixed", "fixed", None, Submit("fixed")),
        # A fixed id the store remembers: a success is reused; a failure deleted and rerun.
        ("fixed", "fixed", "fixed", FIXED_DONE, Reuse("fixed", FIXED_DONE)),
        (
            "fixed",
            "fixed",
            "fixed",
            {**FIXED_DONE, "status": "FAILED"},
            Submit("fixed", delete_first="fixed"),
        ),
    ],
)
def test_choose_job(
    stored: str | None,
    fixed: str | None,
    fresh: str,
    document: dict[str, Any] | None,
    expected: object,
) -> None:
    decision = choose_job(
        stored_id=stored, fixed_id=fixed, fresh_id=fresh, document=document, accepted=ACCEPTED
    )
    assert decision == expected


def test_the_accepted_model_statuses_decide_a_reuse() -> None:
    decision = choose_job(
        stored_id="old",
        fixed_id=None,
        fresh_id="new",
        document=DONE_ERROR,
        accepted={"OK", "ERROR"},
    )
    assert decision == Reuse("old", DONE_ERROR)


@pytest.mark.parametrize(
    ("stored", "fixed", "expected"),
    [
        (None, None, None),
        ("old", None, "old"),
        (None, "f", "f"),
        ("old", "f", "old"),
        ("", "", None),
    ],
)
def test_job_to_look_up(stored: str | None, fixed: str | None, expected: str | None) -> None:
    assert job_to_look_up(stored, fixed) == expected


@pytest.mark.parametrize(
    ("document", "terminal"),
    [
        ({"status": "COMPLETED"}, True),
        ({"status": "FAILED"}, True),
        ({"status": "CANCELLED"}, True),
        ({"status": "EXECUTING"}, False),
        ({"status": "SOMETHING_NEW"}, False),  # unknown statuses are not terminal (§A7)
        ({"status": None}, False),
        ({}, False),
    ],
)
def test_is_terminal_document(document: dict[str, Any], terminal: bool) -> None:
    assert is_terminal_document(document) is terminal


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        # An earlier try's job found by its derived id: still running, so re-attach.
        (RUNNING, Reattach("old", RUNNING)),
        # Finished (even successfully): a look-up by id cannot tell a retry from a clear, so a
        # fresh job runs instead of a reused result.
        (DONE_OK, Submit("new")),
        (FAILED, Submit("new")),
        (None, Submit("new")),
    ],
    ids=["running", "succeeded", "failed", "gone"],
)
def test_without_a_store_an_earlier_try_is_only_reattached_never_reused(
    document: dict[str, Any] | None, expected: object
) -> None:
    decision = choose_job(
        stored_id="old",
        fixed_id=None,
        fresh_id="new",
        document=document,
        accepted=ACCEPTED,
        reuse=False,
    )
    assert decision == expected


def test_earlier_tries_are_looked_up_newest_first() -> None:
    assert list(earlier_try_numbers(4)) == [3, 2, 1]
    assert list(earlier_try_numbers(1)) == []
