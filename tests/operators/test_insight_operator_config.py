"""Configuration mistakes fail the task at once (AirflowFailException: no retries) and before
anything is sent: not even a token is minted (the emulator's record stays empty)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_insight.emulator import Emulator
from airflow_insight.exceptions import ConfigurationError
from airflow_insight.operators.insight import InsightJobOperator, build_request
from airflow_insight.progress import StopAtGap


def test_a_connection_that_does_not_exist_fails_without_retries(emulator: Emulator) -> None:
    operator = InsightJobOperator(task_id="solve", insight_conn_id="no_such_connection")
    with pytest.raises(AirflowFailException, match="'no_such_connection' does not exist"):
        operator.execute(context={})  # type: ignore[arg-type]
    assert emulator.record.requests() == []


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing", None, "does not exist"),
        ("notes.txt", b"not a model", "neither a zip file nor a model file"),
    ],
)
def test_a_bad_payload_fails_before_a_token_is_minted(
    emulator: Emulator, tmp_path: Path, name: str, content: bytes | None, message: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    operator = InsightJobOperator(task_id="solve", payload=str(path))
    with pytest.raises(AirflowFailException, match=message):
        operator.execute(context={})  # type: ignore[arg-type]
    assert emulator.record.requests() == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"stop_rules": [{"rule": "relative_gap", "relative_gap": 0.01}]}, "need solver progress"),
        ({"solver_progress": True, "stop_rules": [{"rule": "gap"}]}, "gap"),
        ({"solver_progress": ["INTSOL", "NOPE"]}, r"unknown solver callbacks \['NOPE'\]"),
        ({"solver_progress": True, "wait_for_termination": False}, "wait_for_termination=True"),
        ({"progress_plot_path": "/tmp/p.png"}, "need solver progress"),
        ({"solver_progress": ["GLOBALLOG"], "solution_path": "/tmp/s.slx"}, "add 'INTSOL'"),
    ],
)
def test_progress_mistakes_fail_when_the_dag_is_parsed(
    arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        InsightJobOperator(task_id="solve", **arguments)


def test_callbacks_without_solver_progress_fail_without_retries(emulator: Emulator) -> None:
    """A (templated) request that enables solver.callbacks itself is refused before any call."""
    operator = InsightJobOperator(
        task_id="solve", job_request={"solver": {"callbacks": ["INTSOL"]}}, job_id="fixed"
    )
    with pytest.raises(AirflowFailException, match="without solver_progress; pass"):
        operator.execute(context={})  # type: ignore[arg-type]
    assert emulator.record.requests() == []


def test_solver_progress_merges_the_callbacks_into_the_request() -> None:
    operator = InsightJobOperator(
        task_id="solve",
        job_request={"solver": {"problemType": "MIP", "callbacks": ["CUTLOG"]}},
        solver_progress=True,
        stop_rules=[StopAtGap(0.02)],
    )
    request = build_request(operator.job_request, "job-1", operator._progress)
    assert request["solver"]["callbacks"] == ["CUTLOG", "INTSOL", "GLOBALLOG", "GAPNOTIFY"]
    assert request["solver"]["controls"] == {"XPRS_MIPRELGAPNOTIFY": 0.02}
    assert operator.stop_rules == [{"rule": "relative_gap", "relative_gap": 0.02}]


def test_a_wrong_secret_names_the_connection_and_the_server(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_INSIGHT_WRONG",
        emulator.airflow_connection_json(client_secret="not-the-secret"),
    )
    operator = InsightJobOperator(task_id="solve", insight_conn_id="insight_wrong", job_id="w-1")
    server = emulator.base_url.rstrip("/")
    with pytest.raises(AirflowFailException) as caught:
        operator.execute(context={})  # type: ignore[arg-type]
    assert (
        f"the Insight server {server} (Airflow connection 'insight_wrong') refused the credentials"
        in str(caught.value)
    )
    # A derived job id (no stored one to look up first): the follower's open is what fails.
    operator = InsightJobOperator(task_id="solve", insight_conn_id="insight_wrong")
    with pytest.raises(AirflowFailException, match="'insight_wrong'"):
        operator.execute(context=_context())  # type: ignore[arg-type]
    text = capfd.readouterr().out
    assert (
        f"Following Insight compute jobs on {server} (Airflow connection 'insight_wrong')"
        " failed: " in text
    ), text
    assert "(all)" not in text
    assert "not-the-secret" not in text


class _TaskInstance:
    """What execute reads of a task instance when it derives the job id."""

    dag_id, run_id, task_id, map_index, try_number = "d", "r", "solve", -1, 1

    def xcom_push(self, key: str, value: Any) -> None:
        """Not reached: the token is refused first."""


def _context() -> dict[str, Any]:
    return {"ti": _TaskInstance()}
