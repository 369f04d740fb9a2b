"""Solver callbacks over the socket: APP_MESSAGE, its answer, interrupts, limits, resends.

Real xpress solves (skipped without the package) and scripted jobs (no solver needed), both
over real sockets with websocket-client as the raw client.
"""

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

from airflow_insight.emulator import NAMED_SCRIPTS, Emulator, JobScript, ScriptedAppMessage
from airflow_insight.emulator.faults import parse_fault
from emulator.support import (
    auth,
    collect,
    connect,
    connection_id,
    follow_answering,
    is_status,
    is_terminal_status,
    job_request,
    knapsack_lp,
    log_lines,
    mint,
    recv_json,
    send,
    statuses,
    submit,
    wait_for_close,
    wait_until,
    zip_of,
)

needs_xpress = pytest.mark.skipif(
    importlib.util.find_spec("xpress") is None,
    reason="the optional 'xpress' package is not installed",
)
SOLVING = dataclasses.replace(NAMED_SCRIPTS["quick"], name="solving", solve=True)
EASY = zip_of({"easy.lp": knapsack_lp(60, 8)})
HARD = zip_of({"hard.lp": knapsack_lp(250, 20)})
#: One thread (a shared 2-core machine), and a time limit far beyond any test's patience.
ONE_THREAD = {"XPRS_THREADS": 1, "XPRS_MAXTIME": -300}


def go_on(message: dict[str, Any]) -> dict[str, Any]:
    return {"interruptSolve": False}


def stop(message: dict[str, Any]) -> dict[str, Any]:
    return {"interruptSolve": True}


def never(message: dict[str, Any]) -> None:
    return None


def app_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["messageType"] == "APP_MESSAGE"]


def results(emulator: Emulator, token: str, job_id: str) -> dict[str, bytes]:
    document = emulator.job(job_id)
    assert document is not None and document["resultUrl"]
    response = requests.get(
        emulator.base_url + document["resultUrl"], headers=auth(token, "application/zip")
    )
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def solver_request(job_id: str, callbacks: list[str], **controls: Any) -> dict[str, Any]:
    solver = {"callbacks": callbacks, "controls": {**ONE_THREAD, **controls}}
    return job_request(job_id, solver=solver)


@pytest.fixture
def solving(emulator: Emulator) -> Emulator:
    emulator.add_script("solve-*", SOLVING)
    return emulator


def start_job(
    emulator: Emulator, token: str, document: dict[str, Any], payload: bytes | None = None
) -> Any:
    ws = connect(emulator, token, timeout=30)
    response = submit(emulator, token, document, connection_id=connection_id(ws), payload=payload)
    assert response.status_code == 201, response.text
    return ws


# --------------------------------------------------------------------------- real solves


@needs_xpress
def test_callbacks_sent_and_answered(solving: Emulator, token: str) -> None:
    document = solver_request("solve-cb", ["INTSOL", "GLOBALLOG"])
    ws = start_job(solving, token, document, EASY)
    messages = follow_answering(ws, go_on, is_terminal_status, timeout=60)
    assert statuses(messages)[-1] == "COMPLETED"
    assert messages[-1]["messagePayload"]["modelStatus"] == "OK"
    sent = app_messages(messages)
    kinds = {m["messagePayload"]["appMessageType"] for m in sent}
    assert kinds == {"INTSOL", "GLOBALLOG"}
    for message in sent:
        payload = message["messagePayload"]
        assert payload["appMessage"]["problemName"] == "easy"
        attributes = payload["appMessage"]["attributes"]
        for name in ("MIPBESTOBJVAL", "BESTBOUND", "NODES", "MIPSOLS", "TIME"):
            assert attributes[name]["name"] == name and attributes[name]["key"] > 0
    intsol = next(m for m in sent if m["messagePayload"]["appMessageType"] == "INTSOL")
    file_url = intsol["messagePayload"]["appMessageFile"]
    assert file_url.endswith(f"/messages/{intsol['messagePayload']['appMessageId']}/file")
    incumbent = requests.get(solving.base_url + file_url, headers=auth(token, "text/plain"))
    assert incumbent.status_code == 200 and incumbent.text.startswith("NAME easy")
    assert " C x0 " in incumbent.text
    # The record has every message and its answer, with timestamps.
    exchanges = solving.record.app_message_exchanges("solve-cb")
    assert [e["appMessageId"] for e in exchanges] == [
        m["messagePayload"]["appMessageId"] for m in sent
    ]
    for exchange in exchanges:
        assert exchange["answeredAt"] >= exchange["writtenAt"][0] >= exchange["sentAt"][0]
        assert exchange["interruptSolve"] is False and exchange["timedOutAt"] is None
    assert json.loads(results(solving, token, "solve-cb")["solution-status.json"]) == {
        "easy": "Optimal"
    }


@needs_xpress
@pytest.mark.parametrize(
    ("kind", "solver"),
    [
        ("GAPNOTIFY", {"controls": {**ONE_THREAD, "XPRS_MIPRELGAPNOTIFY": 0.05}}),
        ("LPLOG", {"controls": ONE_THREAD}),
        ("CUTLOG", {"controls": ONE_THREAD}),
        ("BARLOG", {"controls": ONE_THREAD, "flags": ["BARRIER"]}),
    ],
)
def test_each_callback_kind_fires(
    solving: Emulator, token: str, kind: str, solver: dict[str, Any]
) -> None:
    document = job_request(f"solve-{kind.lower()}", solver={**solver, "callbacks": [kind]})
    ws = start_job(solving, token, document, EASY)
    messages = follow_answering(ws, go_on, is_terminal_status, timeout=60)
    assert statuses(messages)[-1] == "COMPLETED"
    kinds = {m["messagePayload"]["appMessageType"] for m in app_messages(messages)}
    assert kinds == {kind}
    assert f"Emulator: solver callbacks enabled: {kind}" in log_lines(messages)


@needs_xpress
def test_gapnotify_answer_sets_the_next_target(solving: Emulator, token: str) -> None:
    document = solver_request("solve-gap2", ["GAPNOTIFY"], XPRS_MIPRELGAPNOTIFY=0.2)
    answers: list[dict[str, Any]] = []

    def tighten_once(message: dict[str, Any]) -> dict[str, Any]:
        controls = {} if answers else {"XPRS_MIPRELGAPNOTIFY": 0.001}
        answers.append({"interruptSolve": False, "controls": controls})
        return answers[-1]

    ws = start_job(solving, token, document, EASY)
    messages = follow_answering(ws, tighten_once, is_terminal_status, timeout=60)
    # The 20 % target fired; the answer's new 0.1 % target fired once more, then no target.
    gaps = []
    for message in app_messages(messages):
        attributes = message["messagePayload"]["appMessage"]["attributes"]
        best, bound = attributes["MIPBESTOBJVAL"]["value"], attributes["BESTBOUND"]["value"]
        gaps.append(abs(best - bound) / abs(best))
    assert len(gaps) == 2 and gaps[0] <= 0.2 and gaps[1] <= 0.001


@needs_xpress
def test_gapnotify_without_a_target_is_warned_about(solving: Emulator, token: str) -> None:
    ws = start_job(solving, token, solver_request("solve-nogap", ["GAPNOTIFY"]), EASY)
    messages = follow_answering(ws, go_on, is_terminal_status, timeout=60)
    assert app_messages(messages) == []
    assert any(
        line.startswith("Warning: GAPNOTIFY needs a gap target") for line in log_lines(messages)
    )


@needs_xpress
def test_interrupt_solve_stops_the_solve(solving: Emulator, token: str) -> None:
    ws = start_job(solving, token, solver_request("solve-stop", ["INTSOL"]), HARD)
    messages = follow_answering(ws, stop, is_terminal_status, timeout=60)
    assert len(app_messages(messages)) == 1  # stopped at the first incumbent
    assert statuses(messages)[-1] == "COMPLETED"
    assert messages[-1]["messagePayload"]["modelStatus"] == "OK"
    assert "Solve interrupted: an APP_MESSAGE_RESPONSE asked for interruptSolve" in log_lines(
        messages
    )
    status = json.loads(results(solving, token, "solve-stop")["solution-status.json"])
    assert status == {"hard": "Solution available"}
    [finished] = solving.record.of_kind("solve_finished")
    assert finished.data["stoppedBy"] == "client"


@needs_xpress
def test_answer_controls_reach_the_solver(solving: Emulator, token: str) -> None:
    ws = start_job(solving, token, solver_request("solve-ctl", ["INTSOL"]), HARD)
    answered: list[str] = []

    def loosen(message: dict[str, Any]) -> dict[str, Any]:
        answered.append(message["messagePayload"]["appMessageId"])
        if len(answered) == 1:
            return {"interruptSolve": False, "controls": {"XPRS_MIPRELSTOP": 0.5}}
        return {"interruptSolve": False}

    messages = follow_answering(ws, loosen, is_terminal_status, timeout=120)
    lines = log_lines(messages)
    assert "Control XPRS_MIPRELSTOP set to 0.5" in lines
    # A 50 % gap is reached at once: the optimizer stops on it (and calls that optimal).
    assert any(line.startswith("STOPPING - MIPRELSTOP target reached") for line in lines)
    assert statuses(messages)[-1] == "COMPLETED"
    assert solving.record.of_kind("solve_finished")[0].data["stoppedBy"] is None


@needs_xpress
def test_unanswered_message_fails_the_job(start_emulator: Any) -> None:
    emulator = start_emulator(app_message_timeout_seconds=0.5)
    emulator.add_script("solve-*", SOLVING)
    token = mint(emulator)
    ws = start_job(emulator, token, solver_request("solve-late", ["INTSOL"]), HARD)
    messages = follow_answering(ws, never, is_terminal_status, timeout=60)
    assert statuses(messages)[-1] == "FAILED"
    final = messages[-1]["messagePayload"]
    assert final["resultUrl"] is None
    message_id = app_messages(messages)[0]["messagePayload"]["appMessageId"]
    assert any(
        line.startswith(f"Error: no APP_MESSAGE_RESPONSE to INTSOL message {message_id}")
        for line in log_lines(messages)
    )
    [exchange] = emulator.record.app_message_exchanges("solve-late")
    assert exchange["timedOutAt"] is not None and exchange["answeredAt"] is None
    wait_until(lambda: bool(emulator.record.of_kind("solve_finished")), timeout=30)
    assert emulator.record.of_kind("solve_finished")[0].data["stoppedBy"] == "timeout"
    # An answer that comes too late is refused as unknown.
    late = {"appMessageId": message_id, "appMessage": {"interruptSolve": False}}
    send(ws, "APP_MESSAGE_RESPONSE", late, computeJobId="solve-late")
    error = recv_json(ws)
    assert error["messagePayload"]["errorType"] == "APP_MESSAGE_NOT_FOUND"


@needs_xpress
def test_delete_interrupts_a_running_solve(solving: Emulator, token: str) -> None:
    document = job_request("solve-del", solver={"controls": ONE_THREAD})
    ws = start_job(solving, token, document, HARD)
    # Wait until the tree search runs (the solver's own log says so), then delete.
    collect(ws, lambda m: "Starting tree search." in m["messagePayload"].get("lines", []), 60)
    url = solving.base_url + "/api/compute-jobs/solve-del"
    assert requests.delete(url, headers=auth(token), timeout=5).status_code == 202
    messages = collect(ws, is_status("CANCELLED"), timeout=30)
    assert statuses(messages)[-2:] == ["CANCELLING", "CANCELLED"]
    # The optimizer itself stopped (its time limit is 300 s): the thread is free again.
    wait_until(lambda: bool(solving.record.of_kind("solve_finished")), timeout=30)
    assert solving.record.of_kind("solve_finished")[0].data["stoppedBy"] == "delete"


@needs_xpress
def test_delete_while_a_message_waits(solving: Emulator, token: str) -> None:
    ws = start_job(solving, token, solver_request("solve-wait", ["INTSOL"]), HARD)
    collect(ws, lambda m: m["messageType"] == "APP_MESSAGE", timeout=60)
    url = solving.base_url + "/api/compute-jobs/solve-wait"
    assert requests.delete(url, headers=auth(token), timeout=5).status_code == 202
    collect(ws, is_status("CANCELLED"), timeout=30)
    wait_until(lambda: bool(solving.record.of_kind("solve_finished")), timeout=30)
    assert solving.record.of_kind("solve_finished")[0].data["stoppedBy"] == "delete"
    assert solving.hub.pending_app_messages == {}


# --------------------------------------------------------------------------- scripted


def scripted(*messages: ScriptedAppMessage, log_lines: int = 8) -> JobScript:
    return dataclasses.replace(
        NAMED_SCRIPTS["quick"], name="scripted-cb", log_lines=log_lines, app_messages=messages
    )


def test_scripted_sequence_without_a_solver(emulator: Emulator, token: str) -> None:
    emulator.add_script("cb-*", NAMED_SCRIPTS["callbacks"])
    ws = start_job(emulator, token, job_request("cb-1"))
    messages = follow_answering(ws, go_on, is_terminal_status, timeout=20)
    sent = app_messages(messages)
    assert [m["messagePayload"]["appMessageType"] for m in sent] == [
        "INTSOL",
        "GLOBALLOG",
        "GAPNOTIFY",
    ]
    attributes = sent[0]["messagePayload"]["appMessage"]["attributes"]
    assert attributes["MIPBESTOBJVAL"] == {"key": 2006, "name": "MIPBESTOBJVAL", "value": 2109.0}
    assert sent[0]["messagePayload"]["appMessageFile"]
    assert sent[1]["messagePayload"]["appMessageFile"] is None
    # Each message comes after its line, and the solve waited for each answer.
    assert len(log_lines(messages)) == 12 and statuses(messages)[-1] == "COMPLETED"
    assert all(e["answeredAt"] for e in emulator.record.app_message_exchanges("cb-1"))


def test_scripted_interrupt_ends_the_log_there(emulator: Emulator, token: str) -> None:
    emulator.add_script("cb-*", scripted(ScriptedAppMessage(3, "GAPNOTIFY")))
    ws = start_job(emulator, token, job_request("cb-stop"))
    messages = follow_answering(ws, stop, is_terminal_status, timeout=20)
    lines = log_lines(messages)
    assert len(lines) == 4 and lines[-1].startswith("Solve interrupted")
    assert statuses(messages)[-1] == "COMPLETED"


def test_scripted_answer_controls_are_logged(emulator: Emulator, token: str) -> None:
    emulator.add_script("cb-*", scripted(ScriptedAppMessage(1, "GLOBALLOG")))
    ws = start_job(emulator, token, job_request("cb-ctl"))
    answer = {"interruptSolve": False, "controls": {"XPRS_MIPRELSTOP": "0.01"}}
    messages = follow_answering(ws, lambda m: answer, is_terminal_status, timeout=20)
    assert "Control XPRS_MIPRELSTOP set to 0.01 (APP_MESSAGE_RESPONSE)" in log_lines(messages)
    [exchange] = emulator.record.app_message_exchanges("cb-ctl")
    assert exchange["controls"] == {"XPRS_MIPRELSTOP": "0.01"}


def test_scripted_unanswered_message_fails_the_job(start_emulator: Any) -> None:
    emulator = start_emulator(app_message_timeout_seconds=0.3)
    emulator.add_script("cb-*", scripted(ScriptedAppMessage(2)))
    token = mint(emulator)
    ws = start_job(emulator, token, job_request("cb-late"))
    messages = follow_answering(ws, never, is_terminal_status, timeout=20)
    assert statuses(messages)[-1] == "FAILED"
    assert messages[-1]["messagePayload"]["modelStatus"] is None
    assert log_lines(messages)[-1].startswith("Error: no APP_MESSAGE_RESPONSE to GAPNOTIFY")


def test_a_script_can_set_its_own_answer_limit(emulator: Emulator, token: str) -> None:
    short = dataclasses.replace(scripted(ScriptedAppMessage(1)), app_message_timeout_seconds=0.3)
    emulator.add_script("cb-*", short)
    ws = start_job(emulator, token, job_request("cb-short"))
    messages = follow_answering(ws, never, is_terminal_status, timeout=20)
    assert statuses(messages)[-1] == "FAILED"
    [timeout] = emulator.record.of_kind("app_message_timeout")
    assert timeout.data["limitSeconds"] == 0.3 and emulator.config.app_message_timeout_seconds == 60


@pytest.mark.parametrize("resend", [True, False])
def test_pending_message_across_a_dropped_socket(start_emulator: Any, resend: bool) -> None:
    # Resent, the answer has ample time on a loaded machine; not resent, the job fails soon
    # (whether before or after the SUBSCRIBE, the outcome is the same).
    emulator = start_emulator(
        app_message_timeout_seconds=30.0 if resend else 1.0,
        resend_app_messages_on_subscribe=resend,
    )
    emulator.add_script("cb-*", scripted(ScriptedAppMessage(2)))
    token = mint(emulator)
    first = start_job(emulator, token, job_request("cb-drop"))
    message = collect(first, lambda m: m["messageType"] == "APP_MESSAGE", timeout=10)[-1]
    first.close()  # the answer never goes out on this socket
    second = connect(emulator, token)
    entry = {"computeJobId": "cb-drop", "executionAttempts": 1, "lastRunLogLine": 1}
    send(second, "SUBSCRIBE", {"subscriptions": [entry]})
    messages = follow_answering(second, go_on, is_terminal_status, timeout=20)
    again = app_messages(messages)
    [exchange] = emulator.record.app_message_exchanges("cb-drop")
    if resend:
        # §B4.6: the same message again, on the new socket; answered there, the job goes on.
        assert [m["messagePayload"]["appMessageId"] for m in again] == [
            message["messagePayload"]["appMessageId"]
        ]
        assert exchange["connectionIds"] == [connection_id(first), connection_id(second)]
        assert statuses(messages)[-1] == "COMPLETED"
    else:
        assert again == [] and statuses(messages)[-1] == "FAILED"
        assert exchange["timedOutAt"] is not None


def test_drop_right_after_an_app_message_then_resend(start_emulator: Any) -> None:
    emulator = start_emulator()
    emulator.add_script("cb-*", scripted(ScriptedAppMessage(2, "INTSOL", with_file=True)))
    emulator.inject(parse_fault("drop-socket:type=APP_MESSAGE"))
    token = mint(emulator)
    first = start_job(emulator, token, job_request("cb-cut"))
    message = collect(first, lambda m: m["messageType"] == "APP_MESSAGE", timeout=10)[-1]
    assert wait_for_close(first) is None  # aborted right after the message was written
    second = connect(emulator, token)
    entry = {"computeJobId": "cb-cut", "executionAttempts": 1, "lastRunLogLine": 1}
    send(second, "SUBSCRIBE", {"subscriptions": [entry]})
    messages = follow_answering(second, go_on, is_terminal_status, timeout=20)
    [again] = app_messages(messages)
    assert again["messagePayload"] == message["messagePayload"]  # same id, same file URL
    assert statuses(messages)[-1] == "COMPLETED"
    [exchange] = emulator.record.app_message_exchanges("cb-cut")
    assert len(exchange["writtenAt"]) == 2 and exchange["answeredAt"] > exchange["writtenAt"][1]
    assert [e.data for e in emulator.record.of_kind("fault")] == [
        {"fault": "drop-socket", "afterMessageType": "APP_MESSAGE"}
    ]


def test_answer_to_an_unknown_message_gets_error(emulator: Emulator, token: str) -> None:
    ws = connect(emulator, token)
    body = {"appMessageId": "m-1", "appMessage": {"interruptSolve": False}}
    send(ws, "APP_MESSAGE_RESPONSE", body, computeJobId="j")
    error = recv_json(ws)
    assert error["messageType"] == "ERROR" and error["computeJobId"] == "j"
    assert error["messagePayload"]["errorType"] == "APP_MESSAGE_NOT_FOUND"
    [entry] = emulator.record.of_kind("app_message_response")
    assert entry.data["appMessageId"] == "m-1" and entry.data["matched"] is False


def test_finished_jobs_are_forgotten(start_emulator: Any) -> None:
    emulator = start_emulator(forget_finished_jobs_after_seconds=0.2)
    token = mint(emulator)
    submit(emulator, token, job_request("old"))
    emulator.wait_for_status("old", {"COMPLETED"})
    wait_until(lambda: emulator.job("old") is None, timeout=10)
    url = emulator.base_url + "/api/compute-jobs/old"
    assert requests.get(url, headers=auth(token), timeout=5).status_code == 404
    [entry] = emulator.record.of_kind("job_forgotten")
    assert entry.compute_job_id == "old" and entry.data["status"] == "COMPLETED"
    # A job that has not finished is kept, however long it takes.
    emulator.add_script("slow-*", dataclasses.replace(NAMED_SCRIPTS["quick"], queued_seconds=30))
    submit(emulator, token, job_request("slow-1"))
    time.sleep(0.5)
    assert emulator.job("slow-1") is not None
