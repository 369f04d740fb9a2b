"""Live solver progress under ``dag.test()``: a real xpress MIP solved by the emulator.

The model is a seeded 0-1 knapsack whose root node already gets below the 1 % gap of the DAG's
stop rule while proving optimality takes thousands of nodes, so the rule fires on every run and
the solve is stopped early. The task log must hold one progress record per answered callback on
the ``insight.progress`` logger, the emulator's record must show the answer that interrupted the
solve, and the XCom result the progress summary and its series.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from dag_support import CONSOLE_WITHOUT_LOGGER_NAMES, assert_no_secrets, jobs_of, load_dags

from airflow_insight.emulator import NAMED_SCRIPTS, Emulator
from airflow_insight.emulator.callbacks import INTERRUPTED_LINE
from airflow_insight.operators.insight import RESUMED_MESSAGE
from airflow_insight.progress import PROGRESS_LOGGER

# The emulator tests' model generator, under the name pytest gives it (``tests`` is its root).
sys.path.insert(0, str(Path(__file__).parents[1]))
from emulator.support import knapsack_lp

pytest.importorskip("xpress", reason="the real solve needs the emulator's solver extra")

DAGS = load_dags("insight_progress_dags")
#: How a progress record ends in the console: the logger name, then Airflow's ``loc``.
PROGRESS_MARK = f"[{PROGRESS_LOGGER}] loc="
#: A real solve: the emulator runs xpress on the payload's model with the requested callbacks.
SOLVING = dataclasses.replace(NAMED_SCRIPTS["quick"], name="solving", solve=True)


@pytest.fixture(scope="module", autouse=True)
def solving_scripts(emulator: Emulator) -> None:
    """This module's jobs are solved for real (job ids start with the DAG id)."""
    emulator.add_script("t_progress.*", SOLVING)
    emulator.add_script("td_progress.*", SOLVING)
    emulator.add_script("t_progress_reattach.*", SOLVING)


@pytest.fixture
def run_conf(tmp_path: Path) -> dict[str, str]:
    """The DAG run's conf: the model folder to send, the folder for picture and incumbent."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "problem.lp").write_text(knapsack_lp(150, 12))
    return {"model": str(model), "out": str(tmp_path / "out")}


def _progress_records(text: str) -> list[str]:
    return [line for line in text.splitlines() if PROGRESS_MARK in line]


def assert_stopped_by_the_gap_rule(
    emulator: Emulator, dag_id: str, result: dict[str, Any], log_text: str
) -> None:
    """What both modes must show: records in the log, the interrupting answer, the XCom series."""
    (job_id,) = jobs_of(emulator, dag_id)
    assert result["compute_job_id"] == job_id
    assert (result["status"], result["model_status"]) == ("COMPLETED", "OK")
    exchanges = emulator.record.app_message_exchanges(job_id)
    answered = [exchange for exchange in exchanges if exchange["answeredAt"] is not None]
    assert answered and len(answered) == len(exchanges), exchanges
    # The stop: exactly the answers from the rule's message on say interruptSolve true (a stop is
    # final), and the solve ended there.
    interrupts = [exchange["interruptSolve"] for exchange in answered]
    assert True in interrupts, interrupts
    first = interrupts.index(True)
    assert interrupts[first:] == [True] * (len(interrupts) - first)
    assert INTERRUPTED_LINE in emulator.run_log(job_id)
    progress = result["progress"]
    assert progress["stopped_early"] is True
    stopped_by = progress["stopped_by"]
    assert stopped_by["rule"] == {"rule": "relative_gap", "relative_gap": 0.01}
    assert stopped_by["app_message_id"] == answered[first]["appMessageId"]
    assert "is at most the target 1.0000%" in stopped_by["reason"]
    # The handler answered each message at least once, and no more often than it was sent to a
    # socket (a re-send after SUBSCRIBE is answered again; a frame lost with a dropped socket,
    # which a loaded machine may cause, is not).
    delivered = [c for exchange in exchanges for c in exchange["connectionIds"] if c is not None]
    assert len(answered) <= progress["messages_answered"] <= len(delivered), exchanges
    # The series: one point per record, the last at or below the target gap.
    series = progress["series"]
    assert series["fields"] == [
        "time",
        "best_solution",
        "best_bound",
        "relative_gap",
        "solver_time",
    ]
    points = series["points"]
    assert 1 <= len(points) <= len(answered)
    assert all(point[4] is not None for point in points)  # xpress reports its own TIME
    assert stopped_by["solver_time"] == points[-1][4]
    assert points[-1][3] is not None and points[-1][3] <= 0.01
    assert progress["last"]["relative_gap"] == points[-1][3]
    assert_no_secrets(log_text, emulator)
    if CONSOLE_WITHOUT_LOGGER_NAMES:
        return  # Airflow 3.0's dag.test() console names no logger to pick the records by
    # The job named once on the progress logger, then one compact record per change worth
    # seeing (never more than the messages recorded), then the stop warning.
    records = _progress_records(log_text)
    headers = [record for record in records if "Solver progress of Insight compute job" in record]
    assert headers == records[:1] and job_id in headers[0], records
    lines = [record for record in records[1:] if " best " in record and " bound " in record]
    assert 1 <= len(lines) <= progress["messages_answered"], records
    assert all(job_id not in line for line in lines)
    assert all(" gap " in line and " nodes " in line and " sols " in line for line in lines)
    stops = [record for record in records if "stopping the solve (interruptSolve=true)" in record]
    assert len(stops) == 1, records
    assert "stop rule relative_gap: relative gap" in stops[0]
    assert_no_secrets(log_text, emulator)


def test_blocking_progress_is_logged_stopped_by_the_gap_rule_and_returned(
    emulator: Emulator,
    collected: Callable[[], dict[str, Any]],
    run_conf: dict[str, str],
    capfd: pytest.CaptureFixture[str],
) -> None:
    run = DAGS.t_progress.test(run_conf=run_conf)
    output = capfd.readouterr()
    assert run.state == "success", output.out[-4000:]
    result = collected()["result"]
    assert_stopped_by_the_gap_rule(emulator, "t_progress", result, output.out + output.err)
    request = emulator.hub.jobs[result["compute_job_id"]].request
    assert request["solver"]["callbacks"] == ["INTSOL", "GLOBALLOG", "GAPNOTIFY"]
    # The picture and the latest incumbent (INTSOL's appMessageFile), next to each other.
    picture = Path(result["progress_plot_path"])
    assert picture == Path(run_conf["out"]) / "solve-progress.png"
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    incumbent = Path(result["solution_path"]).read_text()
    assert incumbent.startswith("NAME ") and incumbent.rstrip().endswith("ENDATA")
    assert result["progress"]["latest_solution_file"].endswith("/file")


def test_deferred_progress_is_logged_by_the_trigger_and_copied_into_the_result(
    emulator: Emulator,
    collected: Callable[[], dict[str, Any]],
    run_conf: dict[str, str],
    capfd: pytest.CaptureFixture[str],
) -> None:
    """dag.test() runs the trigger inline: its progress records and stop are in the task log,
    before execute_complete resumes; the summary comes through the trigger's event."""
    run = DAGS.td_progress.test(run_conf=run_conf)
    output = capfd.readouterr()
    assert run.state == "success", output.out[-4000:]
    result = collected()["result"]
    text = output.out + output.err
    assert_stopped_by_the_gap_rule(emulator, "td_progress", result, text)
    # Every progress record came from the trigger, before the task resumed.
    before, resumed, after = text.partition(RESUMED_MESSAGE)
    assert resumed
    if not CONSOLE_WITHOUT_LOGGER_NAMES:
        assert _progress_records(before) and not _progress_records(after)
    assert Path(result["progress_plot_path"]).read_bytes()[:4] == b"\x89PNG"
    assert Path(result["solution_path"]).read_text().startswith("NAME ")


def test_a_retry_reattaches_and_its_fresh_handler_answers_the_paused_solve(
    emulator: Emulator,
    collected: Callable[[], dict[str, Any]],
    run_conf: dict[str, str],
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The first try submits and dies: the solve pauses at its first callback, sent to no
    socket. The retry re-attaches (SUBSCRIBE), the emulator re-sends that message, the retry's
    new handler answers it and the rest, and the gap rule stops the solve as in one try."""
    run = DAGS.t_progress_reattach.test(run_conf=run_conf)
    output = capfd.readouterr()
    assert run.state == "success", output.out[-4000:]
    result = collected()["result"]
    text = output.out + output.err
    assert "Re-attaching to Insight compute job" in text
    assert_stopped_by_the_gap_rule(emulator, "t_progress_reattach", result, text)
    first = emulator.record.app_message_exchanges(result["compute_job_id"])[0]
    assert first["connectionIds"][0] is None  # sent while nobody followed the job
    assert len(first["sentAt"]) == 2 and first["connectionIds"][1] is not None
