"""The trigger's event payload: every InsightError subclass round-trips through JSON losslessly."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from support.trigger_events import outcome_from_event

from airflow_insight import exceptions
from airflow_insight.exceptions import InsightError, error_classes
from airflow_insight.protocol.outcome import JobOutcome
from airflow_insight.triggers.payload import TriggerPayload

#: A value for every field name any class of the tree takes (a new field must be added here:
#: the table below fails for a class whose field has no sample).
FIELD_SAMPLES: dict[str, Any] = {
    "status_code": 503,
    "retry_after_seconds": 2.5,
    "compute_job_id": "dag.run.task.1",
    "status": "FAILED",
    "model_status": "INFEASIBLE",
}


def _every_class() -> list[type[InsightError]]:
    return sorted(error_classes().values(), key=lambda cls: cls.__name__)


def _sample(cls: type[InsightError]) -> InsightError:
    return cls(f"{cls.__name__} went wrong", **{n: FIELD_SAMPLES[n] for n in cls.field_names()})


def test_the_table_covers_the_whole_tree() -> None:
    """Every exception class of the module is in the walk (none forgotten)."""
    declared = {
        obj
        for obj in vars(exceptions).values()
        if isinstance(obj, type) and issubclass(obj, InsightError)
    }
    assert declared == set(_every_class())
    assert {"JobNotFound", "JobFailed", "JobCancelled", "SubmitRejected", "ServerError"} <= {
        cls.__name__ for cls in declared
    }


@pytest.mark.parametrize("cls", _every_class(), ids=lambda cls: cls.__name__)
def test_every_error_round_trips_with_its_class_fields_and_flag(cls: type[InsightError]) -> None:
    original = _sample(cls)
    data = json.loads(json.dumps(original.to_dict()))
    again = InsightError.from_dict(data)
    assert type(again) is cls
    assert str(again) == str(original)
    assert again.permanent is original.permanent
    for name in cls.field_names():
        # Each field is stored under its own name (what to_dict reads) and comes back equal.
        assert getattr(again, name) == getattr(original, name) == FIELD_SAMPLES[name]
    assert again.to_dict() == original.to_dict()


@pytest.mark.parametrize("cls", _every_class(), ids=lambda cls: cls.__name__)
def test_an_instance_permanent_flag_survives(cls: type[InsightError]) -> None:
    original = _sample(cls)
    original.permanent = not cls.permanent
    again = InsightError.from_dict(json.loads(json.dumps(original.to_dict())))
    assert again.permanent is (not cls.permanent)


def test_an_unknown_class_comes_back_as_a_named_insight_error() -> None:
    data = {"type": "FromTheFuture", "message": "new", "permanent": True, "fields": {"x": 1}}
    again = InsightError.from_dict(data)
    assert type(again) is InsightError
    assert str(again) == "FromTheFuture: new"
    assert again.permanent is True


def test_fields_that_do_not_fit_fall_back_without_losing_the_message() -> None:
    data = {"type": "JobFailed", "message": "m", "permanent": False, "fields": {"bogus": 1}}
    again = InsightError.from_dict(data)
    assert type(again) is InsightError
    assert str(again) == "JobFailed: m"


_OUTCOME = JobOutcome("j-1", "COMPLETED", "OK", 2, "/res", "/log", 41, ("a", "b"), None, True)


@pytest.mark.parametrize(
    "payload",
    [
        TriggerPayload.finished(_OUTCOME),
        TriggerPayload.finished(_OUTCOME, {"stopped_early": True, "series": {"points": []}}),
        TriggerPayload.timed_out("j-1", 12, cancelled=True),
        TriggerPayload.timed_out("j-1", -1, cancelled=False),
        dataclasses.replace(TriggerPayload.finished(_OUTCOME), log_unread=True),
        *[TriggerPayload.failed("j-1", 7, _sample(cls)) for cls in _every_class()],
    ],
    ids=lambda payload: (
        payload.kind + ("" if payload.error is None else f"-{type(payload.error).__name__}")
    ),
)
def test_payloads_round_trip(payload: TriggerPayload) -> None:
    data = json.loads(json.dumps(payload.to_dict()))
    again = TriggerPayload.from_dict(data)
    assert again.to_dict() == payload.to_dict()
    if payload.kind == "finished":
        assert outcome_from_event(data) == _OUTCOME
        return
    with pytest.raises(InsightError) as info:
        outcome_from_event(data)
    if payload.error is not None:
        assert type(info.value) is type(payload.error)
        assert info.value.to_dict() == payload.error.to_dict()
    else:
        assert isinstance(info.value, exceptions.InsightTimeout)
        assert ("NOT be cancelled" in str(info.value)) is (not payload.cancelled)


def test_a_flat_error_event_of_version_0_1_is_still_read() -> None:
    event = {
        "kind": "error",
        "error_type": "AuthenticationError",
        "message": "refused",
        "permanent": True,
        "compute_job_id": "j",
        "last_run_log_line": -1,
    }
    with pytest.raises(exceptions.AuthenticationError, match="refused"):
        outcome_from_event(event)


def test_an_event_without_the_log_flag_says_the_log_was_read() -> None:
    """Events of triggers older than the flag (a task deferred before an upgrade)."""
    data = TriggerPayload.finished(_OUTCOME).to_dict()
    del data["log_unread"]
    assert TriggerPayload.from_dict(data).log_unread is False
    assert TriggerPayload.from_dict({**data, "log_unread": "yes"}).log_unread is False


def test_not_an_event() -> None:
    with pytest.raises(exceptions.LocalProtocolError, match="kind"):
        outcome_from_event({"kind": "nonsense"})
