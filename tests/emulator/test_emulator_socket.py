"""The progress WebSocket: handshake, pushes, SUBSCRIBE, keep-alive, tokens, client errors."""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import websocket

from airflow_insight.emulator import Emulator, JobScript
from airflow_insight.protocol.messages import LEGACY_SPELLING
from emulator.support import (
    SLOW,
    V2,
    assert_quiet,
    auth,
    collect,
    connect,
    connection_id,
    is_status,
    job_request,
    log_lines,
    mint,
    recv_json,
    send,
    statuses,
    submit,
    wait_for_close,
    wait_until,
)


def test_bad_token_refused_at_handshake(emulator: Emulator) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        connect(emulator, "made-up")
    assert info.value.status_code == 401
    body = json.loads(info.value.resp_body)
    assert body["error"]["code"] == "FICO-Platform-Http-401"
    assert emulator.record.of_kind("handshake_refused")


def test_connection_id_and_compression_offered(emulator: Emulator, token: str) -> None:
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /api/compute-job-messages HTTP/1.1\r\nHost: 127.0.0.1:{emulator.port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Extensions: permessage-deflate\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", emulator.port), timeout=5) as raw:
        raw.sendall(request.encode())
        head = raw.recv(4096).decode().lower()
    assert head.startswith("http/1.1 101")
    assert "sec-websocket-extensions: permessage-deflate" in head
    assert "connection-id: " in head


def test_job_events_flow_to_the_connection_id_socket(emulator: Emulator, token: str) -> None:
    ws = connect(emulator, token)
    other = connect(emulator, token)
    assert connection_id(ws) != connection_id(other)
    submit(emulator, token, job_request("j1"), connection_id=connection_id(ws))
    messages = collect(ws, is_status("COMPLETED"))
    assert statuses(messages) == ["QUEUED", "EXECUTING", "COMPLETING", "COMPLETED"]
    assert log_lines(messages) == emulator.run_log("j1")
    batches = [m["messagePayload"] for m in messages if m["messageType"] == "RUNLOG_UPDATED"]
    assert [(b["startLine"], b["endLines"]) for b in batches] == [(0, 2), (3, 5)]
    assert any(m["messageType"] == "RUNLOG_COMPLETED" for m in messages)
    completed = messages[-1]["messagePayload"]
    assert completed["resultUrl"] and completed["modelStatus"] == "OK"
    executing = next(m for m in messages if is_status("EXECUTING")(m))["messagePayload"]
    assert executing["runLogUrl"] and executing["resultUrl"] is None
    queued = messages[0]["messagePayload"]
    assert queued["runLogUrl"] is None
    # The other socket got nothing of it.
    assert_quiet(other)


def test_no_run_log_messages_unless_asked(emulator: Emulator, token: str) -> None:
    ws = connect(emulator, token)
    submit(emulator, token, job_request("q", runLogMessages=False), connection_id=connection_id(ws))
    messages = collect(ws, is_status("COMPLETED"))
    assert not [m for m in messages if m["messageType"].startswith("RUNLOG")]


def test_legacy_runlog_flag_spelling(emulator: Emulator, token: str) -> None:
    ws = connect(emulator, token)
    document = {"id": "legacy-flag", "computeJobType": "SOLVER", "runlogMessages": True}
    submit(emulator, token, document, connection_id=connection_id(ws))
    assert log_lines(collect(ws, is_status("COMPLETED")))


def test_runlog_completed_can_be_switched_off(start_emulator: Any) -> None:
    emulator = start_emulator(send_runlog_completed=False)
    token = mint(emulator)
    ws = connect(emulator, token)
    submit(emulator, token, job_request("n"), connection_id=connection_id(ws))
    messages = collect(ws, is_status("COMPLETED"))
    assert log_lines(messages) and "RUNLOG_COMPLETED" not in [m["messageType"] for m in messages]


def test_unknown_connection_id_gets_no_events_until_subscribe(
    emulator: Emulator, token: str
) -> None:
    ws = connect(emulator, token)
    submit(emulator, token, job_request("slow-1"), connection_id="not-a-socket")
    submit(emulator, token, job_request("slow-2"))
    assert_quiet(ws)
    wait_until(lambda: len(emulator.run_log("slow-1")) >= 10)
    ws.settimeout(5)
    subscription = {"computeJobId": "slow-1", "executionAttempts": 1, "lastRunLogLine": 3}
    send(ws, "SUBSCRIBE", {"subscriptions": [subscription]})
    first = recv_json(ws)
    assert first["messageType"] == "CURRENT_JOB_STATUS"
    assert first["messagePayload"]["status"] == "EXECUTING"
    replay = recv_json(ws)
    assert replay["messageType"] == "RUNLOG_UPDATED"
    assert replay["messagePayload"]["startLine"] == 4
    # Replay, then live lines: contiguous, no gap, no duplicate.
    lines: list[str] = []
    while len(lines) < 40:
        message = recv_json(ws)
        if message["messageType"] == "RUNLOG_UPDATED":
            if not lines:
                lines = replay["messagePayload"]["lines"]
            assert message["messagePayload"]["startLine"] == 4 + len(lines)
            lines += message["messagePayload"]["lines"]
    assert lines == emulator.run_log("slow-1")[4 : 4 + len(lines)]


def test_subscribe_moves_events_to_the_new_socket(emulator: Emulator, token: str) -> None:
    first = connect(emulator, token)
    submit(emulator, token, job_request("slow-move"), connection_id=connection_id(first))
    collect(first, is_status("EXECUTING"))
    second = connect(emulator, token)
    entry = {"computeJobId": "slow-move", "executionAttempts": 1, "lastRunLogLine": -1}
    send(second, "SUBSCRIBE", {"subscriptions": [entry]})
    assert recv_json(second)["messageType"] == "CURRENT_JOB_STATUS"
    assert recv_json(second)["messagePayload"]["startLine"] == 0
    count = len(emulator.record.messages_sent(connection_id=connection_id(first)))
    time.sleep(0.1)
    assert len(emulator.record.messages_sent(connection_id=connection_id(first))) <= count + 2


def test_subscribe_finished_job_and_unknown_job(emulator: Emulator, token: str) -> None:
    submit(emulator, token, job_request("done"))
    emulator.wait_for_status("done", {"COMPLETED"})
    ws = connect(emulator, token)
    entries = [
        {"computeJobId": "done", "executionAttempts": 1, "lastRunLogLine": -1},
        {"computeJobId": "ghost", "executionAttempts": 1, "lastRunLogLine": -1},
    ]
    send(ws, "SUBSCRIBE", {"subscriptions": entries})
    current = recv_json(ws)
    assert current["messageType"] == "CURRENT_JOB_STATUS"
    assert current["messagePayload"]["status"] == "COMPLETED"
    error = recv_json(ws)  # a finished job gets nothing more (§B4.6)
    assert error["messageType"] == "ERROR" and error["computeJobId"] == "ghost"
    assert error["messagePayload"]["errorType"] == "COMPUTE_JOB_NOT_FOUND"


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "[1, 2]",
        '{"messageType": "DANCE", "messagePayload": {}}',
        '{"messagePayload": {}}',
        '{"messageType": "SUBSCRIBE", "messagePayload": {"subscriptions": "x"}}',
        '{"messageType": "SUBSCRIBE", "messagePayload": {"subscriptions": [{"computeJobId": 1}]}}',
        '{"messageType": "UPDATE_TOKEN", "messagePayload": {"token": ""}}',
        '{"messageType": "UPDATE_TOKEN", "messagePayload": 7}',
        '{"messageType": "PONG", "messagePayload": ' + "[" * 100_000 + "]" * 100_000 + "}",
    ],
)
def test_bad_client_messages_get_error(emulator: Emulator, token: str, text: str) -> None:
    ws = connect(emulator, token)
    ws.send(text)
    error = recv_json(ws)
    assert error["messageType"] == "ERROR"
    assert error["messagePayload"]["errorType"] == "INVALID_MESSAGE"
    assert error["messagePayload"]["errorMessage"]
    # The socket and the server keep working.
    send(ws, "SUBSCRIBE", {"subscriptions": []})
    ws.send_binary(b"\x00\x01")
    assert recv_json(ws)["messagePayload"]["errorType"] == "INVALID_MESSAGE"


def test_oversized_client_message_closes_only_that_socket(emulator: Emulator, token: str) -> None:
    ws = connect(emulator, token)
    # The server may close (1009) and reset before the client has written all 2 MiB.
    with contextlib.suppress(websocket.WebSocketConnectionClosedException, OSError):
        ws.send("x" * (2 * 1024 * 1024))
    assert wait_for_close(ws) in (1009, None)
    healthy = connect(emulator, token)
    send(
        healthy,
        "SUBSCRIBE",
        {"subscriptions": [{"computeJobId": "a", "executionAttempts": 1, "lastRunLogLine": -1}]},
    )
    assert recv_json(healthy)["messageType"] == "ERROR"


def test_pings_and_pongs_are_recorded(start_emulator: Any) -> None:
    emulator = start_emulator(ping_interval_seconds=0.05)
    ws = connect(emulator, mint(emulator))
    assert_quiet(ws, 0.3)  # reading lets websocket-client answer the pings
    pongs = emulator.record.of_kind("pong")
    assert pongs and pongs[0].data["payload"].startswith("ping-")
    assert pongs[0].connection_id == connection_id(ws)


def test_client_ping_gets_pong(emulator: Emulator, token: str) -> None:
    ws = connect(emulator, token, timeout=1.0)
    ws.ping(b"hello")
    frames: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + 5.0
    # The server's own pings may come first; a missing pong fails here, it never hangs.
    while time.monotonic() < deadline and (websocket.ABNF.OPCODE_PONG, b"hello") not in frames:
        with contextlib.suppress(websocket.WebSocketTimeoutException):
            frames.append(ws.recv_data(control_frame=True))
    assert (websocket.ABNF.OPCODE_PONG, b"hello") in frames, frames


def test_closed_on_missed_pong(start_emulator: Any) -> None:
    emulator = start_emulator(ping_interval_seconds=0.05, pong_timeout_seconds=0.2)
    ws = connect(emulator, mint(emulator))
    cid = connection_id(ws)
    time.sleep(0.4)  # not reading: no pongs go out
    # The client may lose the close frame in a TCP reset when it answers a ping too late.
    assert wait_for_close(ws) in (1001, None)
    wait_until(lambda: cid not in emulator.connection_ids())
    closed = [e for e in emulator.record.of_kind("ws_close") if e.connection_id == cid]
    assert closed[0].data["code"] == 1001 and closed[0].data["by"] == "server"


def test_json_pings(start_emulator: Any) -> None:
    emulator = start_emulator(json_pings=True, ping_interval_seconds=0.05, pong_timeout_seconds=0.3)
    ws = connect(emulator, mint(emulator))
    ping = recv_json(ws)
    assert ping["messageType"] == "PING"
    for _ in range(10):
        send(ws, "PONG", ping["messagePayload"])
        ping = recv_json(ws)
    assert emulator.record.of_kind("pong")
    assert connection_id(ws) in emulator.connection_ids()  # pongs kept it open past 0.3 s


def test_closed_on_token_expiry(start_emulator: Any) -> None:
    emulator = start_emulator()
    ws = connect(emulator, mint(emulator, max_age=0.3))
    assert wait_for_close(ws) == 1008


def test_update_token_extends_the_socket(start_emulator: Any) -> None:
    emulator = start_emulator()
    replacement = mint(emulator, max_age=30)
    short = mint(emulator, max_age=1.0)
    short_expired_by = time.monotonic() + 1.0
    ws = connect(emulator, short)
    send(ws, "UPDATE_TOKEN", {"token": replacement})
    # Margins for a loaded machine: the update has a second to arrive; then no acknowledgement,
    # and no close when the handshake token runs out.
    assert_quiet(ws, short_expired_by + 0.3 - time.monotonic())
    assert ws.connected
    updates = emulator.record.of_kind("update_token")
    assert updates[0].data["valid"] is True and updates[0].data["token"].startswith("tok-")


def test_invalid_update_token_gets_error_and_old_expiry(start_emulator: Any) -> None:
    emulator = start_emulator()
    ws = connect(emulator, mint(emulator, max_age=1.0))  # a second to connect and send
    send(ws, "UPDATE_TOKEN", {"token": "made-up"})
    error = recv_json(ws)
    assert error["messagePayload"]["errorType"] == "INVALID_TOKEN"
    assert wait_for_close(ws) == 1008
    assert "made-up" not in repr(emulator.record.entries())


def test_legacy_spelling_switch(start_emulator: Any) -> None:
    emulator = start_emulator(spelling=LEGACY_SPELLING)
    token = mint(emulator)
    ws = connect(emulator, token)
    submit(emulator, token, job_request("old"), connection_id=connection_id(ws))
    messages = collect(ws, is_status("COMPLETED"))
    batch = next(m for m in messages if m["messageType"] == "RUNLOG_UPDATED")
    assert "endLine" in batch["messagePayload"] and "endLines" not in batch["messagePayload"]
    final = messages[-1]["messagePayload"]
    assert final["resultsUrl"] and final["prettyStatus"] == "Completed" and "metricsUrl" in final


def test_delete_running_job_cancels_it(emulator: Emulator, token: str) -> None:
    ws = connect(emulator, token)
    submit(emulator, token, job_request("slow-cancel"), connection_id=connection_id(ws))
    collect(ws, is_status("EXECUTING"))
    url = emulator.base_url + "/api/compute-jobs/slow-cancel"
    assert requests.delete(url, headers=auth(token)).status_code == 202
    assert requests.delete(url, headers=auth(token)).status_code in (202, 204)
    messages = collect(ws, is_status("CANCELLED"))
    assert statuses(messages)[-2:] == ["CANCELLING", "CANCELLED"]
    assert requests.get(url, headers=auth(token)).json()["status"] == "CANCELLED"
    assert requests.delete(url, headers=auth(token)).status_code == 204
    assert emulator.record.of_kind("delete")


def test_concurrent_deletes_cancel_once(emulator: Emulator, token: str) -> None:
    # A long cancel time keeps the job in CANCELLING, so every DELETE here meets a running job.
    emulator.add_script("race-*", dataclasses.replace(SLOW, cancel_seconds=60.0))
    submit(emulator, token, job_request("race-1"))
    emulator.wait_for_status("race-1", {"EXECUTING"})
    url = emulator.base_url + "/api/compute-jobs/race-1"
    barrier = threading.Barrier(8)

    def delete(_: int) -> int:
        barrier.wait(timeout=5)
        return requests.delete(url, headers=auth(token), timeout=5).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(delete, range(8)))
    assert codes == [202] * 8
    job_statuses = [
        entry.data["status"]
        for entry in emulator.record.of_kind("job_status")
        if entry.compute_job_id == "race-1"
    ]
    assert job_statuses[-1] == "CANCELLING" and job_statuses.count("CANCELLING") == 1


def test_client_that_stops_reading_is_cut_off(start_emulator: Any) -> None:
    emulator = start_emulator(send_queue_limit=200, close_timeout_seconds=0.2)
    line = "{n} " + "x" * 1000
    wide = JobScript(queued_seconds=0.0, log_lines=20_000, lines_per_second=0.0, line_template=line)
    emulator.add_script("wide-*", wide)
    token = mint(emulator)
    stuck = connect(emulator, token)  # never read: the socket buffers fill up
    submit(emulator, token, job_request("wide-1"), connection_id=connection_id(stuck))
    wait_until(lambda: bool(emulator.record.of_kind("ws_close")), timeout=20)
    closing = emulator.record.of_kind("ws_closing")
    assert [entry.data["reason"] for entry in closing] == ["client too slow"]
    assert emulator.connection_ids() == []
    healthy = connect(emulator, token)
    send(
        healthy,
        "SUBSCRIBE",
        {
            "subscriptions": [
                {"computeJobId": "ghost", "executionAttempts": 1, "lastRunLogLine": -1}
            ]
        },
    )
    assert recv_json(healthy)["messagePayload"]["errorType"] == "COMPUTE_JOB_NOT_FOUND"


def test_many_clients_unaffected_by_a_bad_one(emulator: Emulator, token: str) -> None:
    sockets = [connect(emulator, token) for _ in range(5)]
    sockets[0].send("{garbage")
    for n, ws in enumerate(sockets):
        submit(emulator, token, job_request(f"multi-{n}"), connection_id=connection_id(ws))
    for ws in sockets[1:]:
        assert statuses(collect(ws, is_status("COMPLETED")))[-1] == "COMPLETED"


def test_path_prefix_websocket(start_emulator: Any) -> None:
    emulator = start_emulator(path_prefix="/insight/")
    assert emulator.websocket_url.endswith("/insight/api/compute-job-messages")
    token = mint(emulator)
    ws = connect(emulator, token)
    submit(emulator, token, job_request("pfx"), connection_id=connection_id(ws))
    assert statuses(collect(ws, is_status("COMPLETED")))[-1] == "COMPLETED"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_tls(start_emulator: Any, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    emulator = start_emulator(tls_cert_path=str(cert), tls_key_path=str(key))
    assert emulator.base_url.startswith("https://")
    assert emulator.websocket_url.startswith("wss://")
    response = requests.post(
        emulator.base_url + "/api/authentication/token",
        data=json.dumps({"clientId": "demo-client", "secret": "demo-secret", "maxAge": 60}),
        headers={"Accept": "text/plain", "Content-Type": V2},
        verify=str(cert),
        timeout=5,
    )
    token = response.text
    ws = websocket.create_connection(
        emulator.websocket_url,
        header=[f"Authorization: Bearer {token}"],
        sslopt={"ca_certs": str(cert)},
        timeout=5,
    )
    assert connection_id(ws)
