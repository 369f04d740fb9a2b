"""InsightJobTrigger with solver progress (issue 12): its kwargs carry the options, its watch
answers the job's APP_MESSAGEs, the records are logged once on ``insight.progress`` and the
``finished`` event carries the summary. A scripted job sends the messages (the emulator's
``ScriptedAppMessage``) and waits for each answer, as a real solve does."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from trigger_support import collect, submit

from airflow_insight.emulator import Emulator, ScriptedAppMessage
from airflow_insight.emulator.callbacks import INTERRUPTED_LINE
from airflow_insight.exceptions import ConfigurationError
from airflow_insight.protocol.progress import PROGRESS_LOGGER, ProgressOptions, StopAtGap
from airflow_insight.triggers.insight import (
    InsightJobTrigger,
    outcome_from_event,
    progress_from_event,
    trigger_kwargs,
)


def _figures(best: float, bound: float, solutions: int) -> dict[str, float]:
    return {"MIPBESTOBJVAL": best, "BESTBOUND": bound, "MIPSOLS": solutions, "OBJSENSE": 1}


# Gap 6.8 %, then 2.1 %, then 0.796 %: the third crosses the 1 % rule, so the fourth never comes.
CALLBACKS = (
    ScriptedAppMessage(2, "GLOBALLOG", _figures(5906.0, 5503.2, 2)),
    ScriptedAppMessage(4, "INTSOL", _figures(5722.0, 5602.5, 5), with_file=True),
    ScriptedAppMessage(6, "GLOBALLOG", _figures(5680.0, 5634.8, 16)),
    ScriptedAppMessage(8, "GLOBALLOG", _figures(5680.0, 5640.0, 16)),
)


def _progress_kwargs(job_id: str) -> dict[str, Any]:
    options = ProgressOptions.from_arguments(True, [StopAtGap(0.01)])
    assert options is not None
    return trigger_kwargs(
        insight_conn_id="insight_default",
        compute_job_id=job_id,
        silence_limit_seconds=0.5,
        progress=options.to_json(),
    )


def test_progress_is_answered_logged_once_and_in_the_finished_event(
    emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    submit(emulator, "prog-1", log_lines=12, app_messages=CALLBACKS)
    kwargs = _progress_kwargs("prog-1")
    stored = json.loads(json.dumps(kwargs))  # as Airflow stores them
    trigger = InsightJobTrigger(**stored)
    assert trigger.serialize()[1] == kwargs
    (event,) = asyncio.run(collect(trigger, timeout=30.0))
    payload = json.loads(json.dumps(event.payload))
    outcome = outcome_from_event(payload)
    assert (outcome.status, outcome.model_status) == ("COMPLETED", "OK")
    # The emulator's record: three messages, each answered, the third with interruptSolve.
    exchanges = emulator.record.app_message_exchanges("prog-1")
    assert [(e["appMessageType"], e["interruptSolve"]) for e in exchanges] == [
        ("GLOBALLOG", False),
        ("INTSOL", False),
        ("GLOBALLOG", True),
    ]
    assert emulator.run_log("prog-1")[-1] == INTERRUPTED_LINE
    progress = progress_from_event(payload)
    assert progress is not None
    assert progress["stopped_early"] is True
    assert progress["stopped_by"]["rule"] == {"rule": "relative_gap", "relative_gap": 0.01}
    assert progress["stopped_by"]["app_message_id"] == exchanges[2]["appMessageId"]
    assert [point[1] for point in progress["series"]["points"]] == [5906.0, 5722.0, 5680.0]
    assert progress["latest_solution_file"].endswith(f"/{exchanges[1]['appMessageId']}/file")
    # Logged once each, on the progress logger (not the run log, not the trigger's own).
    captured = capsys.readouterr()
    text = captured.out + captured.err
    records = [line for line in text.splitlines() if f"[{PROGRESS_LOGGER}]" in line]
    assert len(records) == 4, records
    assert sum("solver progress (" in record for record in records) == 3
    assert "best solution 5680, best bound 5634.8, gap 0.796%" in records[2]
    assert "stopping the solve (interruptSolve=true), stop rule relative_gap" in records[3]


def test_without_progress_the_event_has_none(emulator: Emulator) -> None:
    submit(emulator, "plain-1")
    trigger = InsightJobTrigger(
        insight_conn_id="insight_default", compute_job_id="plain-1", silence_limit_seconds=0.5
    )
    (event,) = asyncio.run(collect(trigger))
    assert event.payload["kind"] == "finished"
    assert progress_from_event(event.payload) is None
    assert trigger.serialize()[1]["progress"] is None


def test_bad_progress_kwargs_fail_the_trigger_permanently(emulator: Emulator) -> None:
    """Kwargs edited by hand (or by another version) with a rule that cannot work."""
    submit(emulator, "bad-1")
    trigger = InsightJobTrigger(
        insight_conn_id="insight_default",
        compute_job_id="bad-1",
        silence_limit_seconds=0.5,
        progress={"callbacks": None, "stop_rules": [{"rule": "relative_gap"}]},
    )
    (event,) = asyncio.run(collect(trigger))
    with pytest.raises(ConfigurationError, match="relative_gap"):
        outcome_from_event(event.payload)
