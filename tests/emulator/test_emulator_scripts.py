"""Job scripts: named scripts, rules, pre-executing statuses, real solves and their fallback."""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import json
import time
import zipfile
from typing import Any

import pytest
import requests

from airflow_insight.emulator import NAMED_SCRIPTS, Emulator, JobScript
from emulator.support import (
    auth,
    collect,
    connect,
    connection_id,
    job_request,
    log_lines,
    statuses,
    submit,
    zip_of,
)

TINY_LP = """\\ a tiny LP
Maximize
 obj: x + 2 y
Subject To
 c1: x + y <= 4
 c2: x + 3 y <= 6
Bounds
 0 <= x <= 3
End
"""
SOLVING = dataclasses.replace(NAMED_SCRIPTS["quick"], name="solving", solve=True)
needs_xpress = pytest.mark.skipif(
    importlib.util.find_spec("xpress") is None, reason="xpress is not installed"
)


def _follow(emulator: Emulator, token: str, document: dict[str, Any], **kw: Any) -> list[Any]:
    ws = connect(emulator, token)
    submit(emulator, token, document, connection_id=connection_id(ws), **kw)
    terminal = ("COMPLETED", "FAILED", "CANCELLED")
    return collect(
        ws,
        lambda m: (
            m["messageType"] == "JOB_STATUS_UPDATED" and m["messagePayload"]["status"] in terminal
        ),
        timeout=30,
    )


def _results(emulator: Emulator, token: str, job_id: str) -> dict[str, bytes]:
    document = emulator.job(job_id)
    assert document is not None
    response = requests.get(emulator.base_url + document["resultUrl"], headers=auth(token, "*/*"))
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


@pytest.mark.parametrize(
    ("name", "final", "model_status"),
    [
        ("quick", "COMPLETED", "OK"),
        ("failed", "FAILED", None),
        ("model-error", "COMPLETED", "ERROR"),
        ("cancelled", "CANCELLED", None),
        ("silent", "COMPLETED", "OK"),
    ],
)
def test_named_scripts(
    emulator: Emulator, token: str, name: str, final: str, model_status: str | None
) -> None:
    emulator.add_script(f"{name}-*", NAMED_SCRIPTS[name])
    messages = _follow(emulator, token, job_request(f"{name}-1"))
    assert statuses(messages)[-1] == final
    assert messages[-1]["messagePayload"]["modelStatus"] == model_status
    assert bool(log_lines(messages)) == (name != "silent")


def test_requeue_script(emulator: Emulator, token: str) -> None:
    emulator.add_script("rq-*", NAMED_SCRIPTS["requeue"])
    messages = _follow(emulator, token, job_request("rq-1"))
    assert statuses(messages).count("QUEUED") == 2
    assert messages[-1]["messagePayload"]["executionAttempts"] == 2


def test_later_rules_win_and_pre_executing_statuses(emulator: Emulator, token: str) -> None:
    emulator.add_script("x-*", NAMED_SCRIPTS["failed"])
    script = JobScript(
        queued_seconds=0.01,
        pre_executing_statuses=("CONNECTING", "WARMING_UP"),
        status_step_seconds=0.01,
        log_lines=2,
        lines_per_second=0,
    )
    emulator.add_script("x-*", script)
    messages = _follow(emulator, token, job_request("x-1"))
    assert statuses(messages) == [
        "QUEUED",
        "CONNECTING",
        "WARMING_UP",
        "EXECUTING",
        "COMPLETING",
        "COMPLETED",
    ]
    connecting = messages[1]["messagePayload"]
    assert connecting["runLogUrl"]  # set once the job left QUEUED


def test_held_jobs_stay_queued_until_their_gate_opens_then_end_together(
    emulator: Emulator, token: str
) -> None:
    held = JobScript(queued_seconds=0.01, hold="batch", log_lines=3, lines_per_second=0)
    emulator.add_script("held-*", held)
    for n in range(3):
        submit(emulator, token, job_request(f"held-{n}"))
    time.sleep(0.5)  # far beyond queued_seconds: only the gate keeps them QUEUED
    assert {(emulator.job(f"held-{n}") or {}).get("status") for n in range(3)} == {"QUEUED"}
    emulator.open_gate("batch")
    ended = [emulator.wait_for_status(f"held-{n}", {"COMPLETED"}) for n in range(3)]
    assert all(document["modelStatus"] == "OK" for document in ended)
    completed = [
        e.at for e in emulator.record.of_kind("job_status") if e.data.get("status") == "COMPLETED"
    ]
    opened = emulator.record.of_kind("gate_opened")
    assert len(completed) == 3 and [e.data for e in opened] == [{"gate": "batch"}]
    assert min(completed) >= opened[0].at
    submit(emulator, token, job_request("held-late"))  # an open gate holds nobody
    emulator.wait_for_status("held-late", {"COMPLETED"})


def test_line_template_and_canned_lines() -> None:
    script = JobScript(line_template="{job_id}#{attempt}:{n}")
    assert script.line(4, "j", 2) == "j#2:4"
    assert JobScript(lines=("a", "b")).line(3, "j", 1) == "b"


def test_demo_script_looks_real_and_scripted_results(start_emulator: Any) -> None:
    fast_demo = dataclasses.replace(
        NAMED_SCRIPTS["demo"], queued_seconds=0.01, lines_per_second=0, completing_seconds=0.01
    )
    emulator = start_emulator(default_script=fast_demo)
    from emulator.support import mint

    token = mint(emulator)
    messages = _follow(emulator, token, job_request("demo-1", computeJobType="MOSEL"))
    lines = log_lines(messages)
    # Canned lines that look like a solve, and say loudly that they are not one.
    assert len(lines) >= 30 and lines[1].startswith("FICO Xpress")
    label = "Emulator: SIMULATED run: this emulator does not run Mosel models"
    assert lines[0].startswith(label) and lines[-1].startswith(label)
    files = _results(emulator, token, "demo-1")
    assert json.loads(files["solution-status.json"]) == {"demo-1": "Simulated"}
    assert b"SIMULATED" in files["SIMULATED.txt"]


@needs_xpress
def test_real_solve_streams_the_solver_log(emulator: Emulator, token: str) -> None:
    emulator.add_script("solve-*", SOLVING)
    document = job_request("solve-1", solver={"resultsToInclude": ["SOLUTION"]})
    messages = _follow(emulator, token, document, payload=zip_of({"tiny.lp": TINY_LP}))
    lines = log_lines(messages)
    assert any("Optimal" in line for line in lines)
    assert lines == emulator.run_log("solve-1")
    assert messages[-1]["messagePayload"]["modelStatus"] == "OK"
    files = _results(emulator, token, "solve-1")
    assert json.loads(files["solution-status.json"]) == {"tiny": "Optimal"}
    assert "tiny.slx" in files


def test_solve_falls_back_to_the_script_without_a_model(emulator: Emulator, token: str) -> None:
    emulator.add_script("solve-*", SOLVING)
    messages = _follow(emulator, token, job_request("solve-2"), payload=zip_of({"a.txt": "x"}))
    lines = log_lines(messages)
    assert lines[1:-1] == [SOLVING.line(n, "solve-2", 1) for n in range(5)]
    label = "Emulator: SIMULATED run: the payload holds no LP/MPS model to solve"
    assert lines[0].startswith(label) and lines[-1] == lines[0]


def test_scripts_without_solve_carry_no_label(emulator: Emulator, token: str) -> None:
    emulator.add_script("canned-*", NAMED_SCRIPTS["quick"])
    payload = zip_of({"model.lp": TINY_LP})
    messages = _follow(emulator, token, job_request("canned-1"), payload=payload)
    assert not any("SIMULATED" in line for line in log_lines(messages))


def test_script_round_trips_through_plain_fields() -> None:
    script = NAMED_SCRIPTS["callbacks"]
    fields = json.loads(json.dumps(dataclasses.asdict(script)))
    assert JobScript.from_fields(fields) == script
