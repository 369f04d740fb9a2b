"""Configuration mistakes fail the task at once (AirflowFailException: no retries) and before
anything is sent: not even a token is minted (the emulator's record stays empty)."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_insight.emulator import Emulator
from airflow_insight.operators.insight import InsightJobOperator


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
