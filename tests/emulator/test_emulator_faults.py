"""Every fault of §A9, injected globally and per job, and the command-line spec syntax."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests
import websocket

from airflow_insight.emulator import Emulator, JobScript, faults
from airflow_insight.exceptions import ConfigurationError
from emulator.support import (
    V2,
    assert_quiet,
    auth,
    connect,
    connection_id,
    job_request,
    log_lines,
    mint,
    statuses,
    submit,
    wait_for_close,
)


def _run(emulator: Emulator, token: str, job_id: str) -> list[dict[str, Any]]:
    ws = connect(emulator, token)
    submit(emulator, token, job_request(job_id), connection_id=connection_id(ws))
    return _read_until_terminal(ws)


def _read_until_terminal(ws: websocket.WebSocket) -> list[dict[str, Any]]:
    """Every frame's text (parsed when JSON) until a terminal status."""
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        text = ws.recv()
        try:
            message = json.loads(text)
        except ValueError:
            messages.append({"raw": text})
            continue
        messages.append(message)
        status = message.get("messagePayload", {}).get("status")
        if message.get("messageType") == "JOB_STATUS_UPDATED" and status in (
            "COMPLETED",
            "FAILED",
            "CANCELLED",
        ):
            return messages
    raise AssertionError(messages)


# --------------------------------------------------------------------------- REST faults


@pytest.mark.parametrize("status", [401, 403, 409, 422, 429, 500, 503])
def test_http_error_once(emulator: Emulator, token: str, status: int) -> None:
    emulator.inject(faults.HttpError("POST", "/api/compute-jobs", status))
    first = submit(emulator, token, job_request(f"h-{status}"))
    assert first.status_code == status
    assert first.json()["error"]["code"] == f"FICO-Platform-Http-{status}"
    if status in (429, 503):
        assert first.headers["Retry-After"] == "1"
    assert submit(emulator, token, job_request(f"h-{status}")).status_code == 201


def test_http_error_n_times_with_retry_after_and_glob(emulator: Emulator, token: str) -> None:
    emulator.inject(faults.HttpError("GET", "/api/compute-jobs/*", 429, 2, 2.5))
    url = emulator.base_url + "/api/compute-jobs/any"
    codes = [requests.get(url, headers=auth(token)) for _ in range(3)]
    assert [c.status_code for c in codes] == [429, 429, 404]
    assert codes[0].headers["Retry-After"] == "2.5"


def test_http_error_on_token_endpoint_and_forever(emulator: Emulator) -> None:
    emulator.inject(faults.HttpError("*", "/api/authentication/token", 500, times=None))
    for _ in range(3):
        response = requests.post(
            emulator.base_url + "/api/authentication/token",
            json={},
            headers={"Accept": "text/plain", "Content-Type": V2},
        )
        assert response.status_code == 500
    emulator.clear_faults()
    assert mint(emulator)


def test_delay(emulator: Emulator, token: str) -> None:
    emulator.inject(faults.Delay("GET", "/api/compute-jobs/*", 0.3))
    url = emulator.base_url + "/api/compute-jobs/x"
    with pytest.raises(requests.Timeout):
        requests.get(url, headers=auth(token), timeout=0.1)
    assert requests.get(url, headers=auth(token), timeout=5).status_code == 404
    assert emulator.record.of_kind("fault")[0].data["fault"] == "delay"


def test_expire_tokens(emulator: Emulator, token: str) -> None:
    ws = connect(emulator, token)
    emulator.inject(faults.ExpireTokens())
    url = emulator.base_url + "/api/compute-jobs/x"
    assert requests.get(url, headers=auth(token)).status_code == 401
    assert wait_for_close(ws) == 1008
    assert requests.get(url, headers=auth(mint(emulator))).status_code == 404


# --------------------------------------------------------------------------- socket faults


@pytest.mark.parametrize("status", [401, 503])
def test_refuse_handshake(emulator: Emulator, token: str, status: int) -> None:
    emulator.inject(faults.RefuseHandshake(status))
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        connect(emulator, token)
    assert info.value.status_code == status
    assert connect(emulator, token).connected


def test_drop_socket_after_messages(emulator: Emulator, token: str) -> None:
    emulator.inject(faults.DropSocket(after_messages=2))
    ws = connect(emulator, token)
    submit(emulator, token, job_request("d1"), connection_id=connection_id(ws))
    received = 0
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
        while True:
            if not ws.recv():
                raise ConnectionError("closed")
            received += 1
    assert received == 2
    # The job goes on; a new socket can pick it up.
    emulator.wait_for_status("d1", {"COMPLETED"})


def test_drop_socket_at_status_with_close_code(emulator: Emulator, token: str) -> None:
    emulator.inject(faults.DropSocket(status="EXECUTING", close_code=4000))
    ws = connect(emulator, token)
    submit(emulator, token, job_request("d2"), connection_id=connection_id(ws))
    first = json.loads(ws.recv())
    assert first["messagePayload"]["status"] == "QUEUED"
    assert wait_for_close(ws) == 4000
    ws2 = connect(emulator, token)
    entry = {"computeJobId": "d2", "executionAttempts": 1, "lastRunLogLine": -1}
    ws2.send(json.dumps({"messageType": "SUBSCRIBE", "messagePayload": {"subscriptions": [entry]}}))
    current = json.loads(ws2.recv())
    assert current["messageType"] == "CURRENT_JOB_STATUS"


def test_ignore_pongs_closes_on_missed_pong(start_emulator: Any) -> None:
    emulator = start_emulator(ping_interval_seconds=0.05, pong_timeout_seconds=0.2)
    emulator.inject(faults.IgnorePongs())
    ws = connect(emulator, mint(emulator))
    assert wait_for_close(ws) == 1001  # we read and answer every ping, yet we are closed
    assert all(p.data["ignored"] for p in emulator.record.of_kind("pong"))
    healthy = connect(emulator, mint(emulator))
    assert_quiet(healthy, 0.4)  # answers pings; the fault was used up, so it stays open
    assert connection_id(healthy) in emulator.connection_ids()


def test_token_expiry_fault(emulator: Emulator, token: str) -> None:
    emulator.inject(faults.TokenExpiry(0.1))
    ws = connect(emulator, token)
    assert wait_for_close(ws) == 1008


# --------------------------------------------------------------------------- message faults


def test_malformed_unknown_type_and_unknown_job(emulator: Emulator, token: str) -> None:
    emulator.inject(
        faults.MalformedJson(job_id="mf"),
        faults.UnknownMessageType("SHINY_NEW"),
        faults.UnknownJobMessage(),
    )
    messages = _run(emulator, token, "mf")
    assert "raw" in messages[0]
    assert messages[1]["messageType"] == "SHINY_NEW"
    assert messages[2]["computeJobId"].startswith("no-such-job-")
    assert messages[3]["messagePayload"]["status"] == "QUEUED"
    assert [m for m in emulator.record.of_kind("fault") if m.data["fault"] == "malformed-json"]


def test_missing_and_extra_fields(emulator: Emulator, token: str) -> None:
    emulator.inject(
        faults.MissingFields(("executionAttempts", "runLogUrl"), "JOB_STATUS_UPDATED"),
        faults.ExtraFields({"futureField": [1, 2]}, "RUNLOG_UPDATED"),
    )
    messages = _run(emulator, token, "fields")
    queued = messages[0]["messagePayload"]
    assert "executionAttempts" not in queued and "runLogUrl" not in queued
    batch = next(m for m in messages if m["messageType"] == "RUNLOG_UPDATED")
    assert batch["messagePayload"]["futureField"] == [1, 2]
    later = [m for m in messages if m["messageType"] == "JOB_STATUS_UPDATED"][1:]
    assert all("executionAttempts" in m["messagePayload"] for m in later)


def test_legacy_fields_for_some_jobs(emulator: Emulator, token: str) -> None:
    emulator.inject(faults.LegacyFields(job_id="old-*"))
    old = _run(emulator, token, "old-1")
    new = _run(emulator, token, "new-1")
    assert "resultsUrl" in old[-1]["messagePayload"] and "prettyStatus" in old[-1]["messagePayload"]
    assert "resultUrl" in new[-1]["messagePayload"]
    old_batch = next(m for m in old if m["messageType"] == "RUNLOG_UPDATED")
    assert "endLine" in old_batch["messagePayload"]


def test_duplicate_and_out_of_order_runlog(emulator: Emulator, token: str) -> None:
    emulator.add_script(
        "ooo",
        JobScript(
            queued_seconds=0.01,
            log_lines=9,
            lines_per_second=0,
            batch_size=3,
            completing_seconds=0.01,
        ),
    )
    emulator.inject(faults.DuplicateRunLog(job_id="ooo"), faults.OutOfOrderRunLog(job_id="ooo"))
    messages = _run(emulator, token, "ooo")
    starts = [
        m["messagePayload"]["startLine"] for m in messages if m["messageType"] == "RUNLOG_UPDATED"
    ]
    # Batch 0 is held back, batch 3 goes first and twice, then 0, then 6.
    assert starts == [3, 3, 0, 6]


# --------------------------------------------------------------------------- job faults


def test_requeue_fault_and_script(emulator: Emulator, token: str) -> None:
    emulator.inject(faults.Requeue(after_lines=3, job_id="rq"))
    messages = _run(emulator, token, "rq")
    assert statuses(messages) == [
        "QUEUED",
        "EXECUTING",
        "QUEUED",
        "EXECUTING",
        "COMPLETING",
        "COMPLETED",
    ]
    attempts = [
        m["messagePayload"]["executionAttempts"]
        for m in messages
        if m["messageType"] == "JOB_STATUS_UPDATED"
    ]
    assert attempts == [1, 1, 2, 2, 2, 2]
    lines = log_lines(messages)
    assert lines == emulator.run_log("rq") and len(lines) == 7  # 6 + the requeue marker
    assert lines[3].startswith("Job requeued")


@pytest.mark.parametrize(
    ("status", "model_status", "expected"),
    [
        ("FAILED", None, ["QUEUED", "EXECUTING", "FAILED"]),
        ("CANCELLED", None, ["QUEUED", "EXECUTING", "CANCELLING", "CANCELLED"]),
        ("COMPLETED", "ERROR", ["QUEUED", "EXECUTING", "COMPLETING", "COMPLETED"]),
    ],
)
def test_finish_with(
    emulator: Emulator, token: str, status: str, model_status: str | None, expected: list[str]
) -> None:
    emulator.inject(faults.FinishWith(status, model_status, job_id="fin"))
    messages = _run(emulator, token, "fin")
    assert statuses(messages) == expected
    assert messages[-1]["messagePayload"]["modelStatus"] == model_status
    assert (messages[-1]["messagePayload"]["resultUrl"] is not None) == (status == "COMPLETED")


def test_faults_inside_a_script_are_per_job(emulator: Emulator, token: str) -> None:
    script = JobScript(
        queued_seconds=0.01,
        log_lines=3,
        lines_per_second=0,
        faults=(faults.FinishWith("FAILED"), faults.UnknownMessageType("ONLY_FOR_ME")),
    )
    emulator.add_script("scripted-*", script)
    mine = _run(emulator, token, "scripted-1")
    assert statuses(mine)[-1] == "FAILED"
    assert mine[0]["messageType"] == "ONLY_FOR_ME"
    other = _run(emulator, token, "plain-1")
    assert statuses(other)[-1] == "COMPLETED"
    assert all(m["messageType"] != "ONLY_FOR_ME" for m in other)
    mine_again = _run(emulator, token, "scripted-2")
    assert statuses(mine_again)[-1] == "FAILED"


def test_inject_rejects_non_faults(emulator: Emulator) -> None:
    with pytest.raises(TypeError):
        emulator.inject("http:GET:/x:500")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- spec syntax


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            "http:POST:/api/compute-jobs:503:times=2",
            faults.HttpError("POST", "/api/compute-jobs", 503, 2),
        ),
        (
            "http:get:/api/compute-jobs/*:429:retry-after=3",
            faults.HttpError("GET", "/api/compute-jobs/*", 429, 1, 3.0),
        ),
        ("delay:GET:*:1.5:times=inf", faults.Delay("GET", "*", 1.5, None)),
        ("drop-socket:after=5", faults.DropSocket(after_messages=5)),
        ("drop-socket:type=app_message", faults.DropSocket(message_type="APP_MESSAGE")),
        (
            "drop-socket:status=EXECUTING:code=4001:job=a*",
            faults.DropSocket(status="EXECUTING", close_code=4001, job_id="a*"),
        ),
        ("refuse-handshake:401", faults.RefuseHandshake(401)),
        ("refuse-handshake", faults.RefuseHandshake(503)),
        ("ignore-pongs:times=3", faults.IgnorePongs(3)),
        ("token-expiry:0.5", faults.TokenExpiry(0.5)),
        ("expire-tokens", faults.ExpireTokens()),
        ("expire-tokens:after=2", faults.ExpireTokens(2.0)),
        ("malformed-json:job=x*", faults.MalformedJson("x*")),
        ("malformed-json:burst=50:times=3", faults.MalformedJson("*", 3, 50)),
        ("huge-frame:64:job=h*", faults.HugeFrame(64.0, "h*")),
        ("huge-body:GET:/api/compute-jobs/*:300", faults.HugeBody("GET", "/api/compute-jobs/*")),
        ("trickle:get:*:0.1:times=2", faults.Trickle("GET", "*", 0.1, 2)),
        ("unknown-message-type:type=NEW", faults.UnknownMessageType("NEW")),
        ("unknown-job", faults.UnknownJobMessage()),
        (
            "missing-fields:status,runLogUrl:type=JOB_STATUS_UPDATED",
            faults.MissingFields(("status", "runLogUrl"), "JOB_STATUS_UPDATED"),
        ),
        ("extra-fields:a=1,b=text", faults.ExtraFields({"a": 1, "b": "text"})),
        ("legacy-fields", faults.LegacyFields()),
        ("duplicate-runlog:times=2", faults.DuplicateRunLog(times=2)),
        ("out-of-order-runlog", faults.OutOfOrderRunLog()),
        ("requeue:after=7:job=r*", faults.Requeue(7, "r*")),
        ("finish:completed:model-status=ERROR", faults.FinishWith("COMPLETED", "ERROR")),
    ],
)
def test_parse_fault(spec: str, expected: faults.Fault) -> None:
    assert faults.parse_fault(spec) == expected


@pytest.mark.parametrize(
    "spec",
    [
        "nonsense",
        "http:GET:/x",
        "http:GET:/x:abc",
        "drop-socket",
        "drop-socket:after=x",
        "drop-socket:after=1:type=APP_MESSAGE",
    ],
)
def test_parse_fault_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(ConfigurationError):
        faults.parse_fault(spec)


def test_cleared_faults_no_longer_fire(emulator: Emulator, token: str) -> None:
    emulator.inject(faults.FinishWith("FAILED", job_id="nobody-*"))
    emulator.clear_faults()
    assert statuses(_run(emulator, token, "nobody-1"))[-1] == "COMPLETED"
