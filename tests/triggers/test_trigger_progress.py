"""InsightJobTrigger with solver progress: its kwargs carry the options, its watch
answers the job's APP_MESSAGEs, the records are logged once on ``insight.progress`` and the
``finished`` event carries the summary. A scripted job sends the messages (the emulator's
``ScriptedAppMessage``) and waits for each answer, as a real solve does."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from support.trigger_events import outcome_from_event
from trigger_support import collect, submit

from airflow_insight.emulator import NAMED_SCRIPTS, Emulator
from airflow_insight.emulator.callbacks import INTERRUPTED_LINE
from airflow_insight.exceptions import ConfigurationError
from airflow_insight.progress import PROGRESS_LOGGER, ProgressOptions, StopAtGap
from airflow_insight.triggers.insight import (
    InsightJobTrigger,
    trigger_kwargs,
)
from airflow_insight.triggers.payload import TriggerPayload

#: The emulator's scripted solve: INTSOL 2109 (no bound yet), GLOBALLOG 1996 / 1971.5 (gap
#: 1.23 %), GAPNOTIFY 1981 / 1978.25 (0.14 %, below the 1 % rule) after lines 2, 6 and 10 of 12.
CALLBACKS = NAMED_SCRIPTS["callbacks"]


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
    emulator.add_script("prog-1", CALLBACKS)
    submit(emulator, "prog-1")
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
        ("INTSOL", False),
        ("GLOBALLOG", False),
        ("GAPNOTIFY", True),
    ]
    log = emulator.run_log("prog-1")
    assert log[-1] == INTERRUPTED_LINE
    assert len(log) == 11  # 10 lines, then the interruption: lines 11-12 were never written
    progress = TriggerPayload.from_dict(payload).progress
    assert progress is not None
    assert progress["stopped_early"] is True
    assert progress["stopped_by"]["rule"] == {"rule": "relative_gap", "relative_gap": 0.01}
    assert progress["stopped_by"]["app_message_id"] == exchanges[2]["appMessageId"]
    assert [point[1] for point in progress["series"]["points"]] == [2109.0, 1996.0, 1981.0]
    assert progress["latest_solution_file"].endswith(f"/{exchanges[0]['appMessageId']}/file")
    # Logged once each, on the progress logger (not the run log, not the trigger's own).
    captured = capsys.readouterr()
    text = captured.out + captured.err
    records = [line for line in text.splitlines() if f"[{PROGRESS_LOGGER}]" in line]
    assert len(records) == 5, records
    assert "Solver progress of Insight compute job prog-1" in records[0]
    assert all(" best " in record and "prog-1" not in record for record in records[1:4])
    assert "best 1981 bound 1978.25 gap 0.14%" in " ".join(records[3].split())
    assert "stopping the solve (interruptSolve=true), stop rule relative_gap" in records[4]


def test_without_progress_the_event_has_none(emulator: Emulator) -> None:
    submit(emulator, "plain-1")
    trigger = InsightJobTrigger(
        insight_conn_id="insight_default", compute_job_id="plain-1", silence_limit_seconds=0.5
    )
    (event,) = asyncio.run(collect(trigger))
    assert event.payload["kind"] == "finished"
    assert TriggerPayload.from_dict(event.payload).progress is None
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
