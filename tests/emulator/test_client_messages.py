"""The emulator's answers to client messages, fed as literal wire text with no socket at all.

``client_messages`` and ``sockets`` are the plain part behind the aiohttp pump: a
:class:`Socket` without a connection keeps what it would send in its queue, read here with
``take_sent``. The answers are checked as JSON text, not through the shared codec.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_insight.emulator import client_messages, faults
from airflow_insight.emulator.callbacks import PendingAppMessage
from airflow_insight.emulator.config import EmulatorConfig
from airflow_insight.emulator.hub import Hub
from airflow_insight.emulator.jobs import Job
from airflow_insight.emulator.record import Record, token_fingerprint
from airflow_insight.emulator.scripts import DEMO
from airflow_insight.emulator.sockets import CLOSE_POLICY, Socket

EXPIRY = 1_000_000.0


@pytest.fixture
def hub() -> Hub:
    return Hub(EmulatorConfig(), Record())


@pytest.fixture
def socket(hub: Hub) -> Socket:
    sock = Socket("conn-1", EXPIRY, send_queue_limit=hub.config.send_queue_limit)
    hub.connections[sock.id] = sock
    return sock


def _job(hub: Hub, job_id: str, status: str, log: list[str]) -> Job:
    job = Job(id=job_id, request={}, script=DEMO, payload=None, run_log_messages=True)
    job.status = status
    job.log = list(log)
    job.flushed_upto = len(log) - 1
    hub.jobs[job_id] = job
    return job


def _sent(socket: Socket) -> list[dict[str, Any]]:
    return [json.loads(text) for text in socket.take_sent()]


def _subscribe(job_id: str, last_line: int) -> str:
    return (
        '{"messageType": "SUBSCRIBE", "messagePayload": {"subscriptions": ['
        f'{{"computeJobId": "{job_id}", "executionAttempts": 1, "lastRunLogLine": {last_line}}}'
        "]}}"
    )


def test_subscribe_to_a_running_job_sends_its_status_then_the_missed_lines(
    hub: Hub, socket: Socket
) -> None:
    job = _job(hub, "job-1", "EXECUTING", ["line 0", "line 1", "line 2"])

    client_messages.receive_text(hub, socket, _subscribe("job-1", 0))

    status, lines = _sent(socket)
    assert status["messageType"] == "CURRENT_JOB_STATUS"
    assert status["computeJobId"] == "job-1"
    assert status["messagePayload"]["status"] == "EXECUTING"
    assert lines["messageType"] == "RUNLOG_UPDATED"
    assert lines["messagePayload"]["startLine"] == 1
    assert lines["messagePayload"]["lines"] == ["line 1", "line 2"]
    assert job.connection_id == "conn-1"
    (entry,) = hub.record.of_kind("subscribe")
    assert entry.data == {"executionAttempts": 1, "lastRunLogLine": 0, "found": True}


def test_subscribe_to_a_finished_job_sends_its_status_only(hub: Hub, socket: Socket) -> None:
    _job(hub, "job-1", "COMPLETED", ["line 0", "line 1"])

    client_messages.receive_text(hub, socket, _subscribe("job-1", -1))

    (status,) = _sent(socket)
    assert status["messageType"] == "CURRENT_JOB_STATUS"
    assert status["messagePayload"]["status"] == "COMPLETED"


def test_subscribe_to_an_unknown_job_answers_compute_job_not_found(
    hub: Hub, socket: Socket
) -> None:
    client_messages.receive_text(hub, socket, _subscribe("ghost", -1))

    (error,) = _sent(socket)
    assert error["messageType"] == "ERROR"
    assert error["computeJobId"] == "ghost"
    assert error["messagePayload"]["errorType"] == "COMPUTE_JOB_NOT_FOUND"
    assert not socket.closed
    assert hub.record.of_kind("subscribe")[0].data["found"] is False


def test_subscribe_sends_an_unanswered_app_message_again_with_its_id(
    hub: Hub, socket: Socket
) -> None:
    job = _job(hub, "job-1", "EXECUTING", [])
    pending = PendingAppMessage("INTSOL", {"problemName": "p", "attributes": {"MIPOBJVAL": 3}})
    job.pending_app_message = pending
    hub.pending_app_messages[pending.id] = job

    client_messages.receive_text(hub, socket, _subscribe("job-1", -1))

    status, app_message = _sent(socket)
    assert status["messageType"] == "CURRENT_JOB_STATUS"
    assert app_message["messageType"] == "APP_MESSAGE"
    assert app_message["messagePayload"]["appMessageId"] == pending.id
    assert [e.data["resend"] for e in hub.record.of_kind("app_message")] == [True]
    assert len(hub.record.of_kind("app_message_written")) == 1


def test_update_token_with_a_good_token_moves_the_expiry_and_answers_nothing(
    hub: Hub, socket: Socket
) -> None:
    token, issued = hub.tokens.mint("demo-client", 60)

    client_messages.receive_text(
        hub, socket, f'{{"messageType":"UPDATE_TOKEN","messagePayload":{{"token":"{token}"}}}}'
    )

    assert socket.take_sent() == []
    assert socket.token_expires_at == issued.expires_at
    (entry,) = hub.record.of_kind("update_token")
    assert entry.data == {"token": token_fingerprint(token), "valid": True}
    assert token not in json.dumps([e.data for e in hub.record.entries()])


def test_update_token_with_an_unknown_token_answers_invalid_token_and_keeps_the_expiry(
    hub: Hub, socket: Socket
) -> None:
    secret = "not-a-token-the-emulator-issued"

    client_messages.receive_text(
        hub, socket, f'{{"messageType":"UPDATE_TOKEN","messagePayload":{{"token":"{secret}"}}}}'
    )

    (error,) = _sent(socket)
    assert error["messagePayload"]["errorType"] == "INVALID_TOKEN"
    assert socket.token_expires_at == EXPIRY
    assert secret not in json.dumps([e.data for e in hub.record.entries()])


def test_a_broken_message_is_answered_invalid_message_and_recorded_by_size_only(
    hub: Hub, socket: Socket
) -> None:
    text = '{"messageType":"UPDATE_TOKEN","messagePayload":{"token":"secret-bits"'

    client_messages.receive_text(hub, socket, text)

    (error,) = _sent(socket)
    assert error["messagePayload"]["errorType"] == "INVALID_MESSAGE"
    (entry,) = hub.record.of_kind("ws_received")
    assert entry.data["length"] == len(text)
    assert "secret-bits" not in json.dumps(entry.data)


def test_unsubscribe_is_no_message_of_the_protocol(hub: Hub, socket: Socket) -> None:
    client_messages.receive_text(
        hub, socket, '{"messageType":"UNSUBSCRIBE","messagePayload":{"subscriptions":[]}}'
    )

    (error,) = _sent(socket)
    assert error["messagePayload"]["errorType"] == "INVALID_MESSAGE"
    assert "UNSUBSCRIBE" in error["messagePayload"]["errorMessage"]
    assert not socket.closed


def test_a_binary_frame_is_refused_and_the_socket_stays_open(hub: Hub, socket: Socket) -> None:
    client_messages.receive_binary(hub, socket, 12)

    (error,) = _sent(socket)
    assert error["messagePayload"]["errorType"] == "INVALID_MESSAGE"
    assert hub.record.of_kind("ws_received")[0].data == {"binary": 12}
    assert not socket.closed


def test_a_json_pong_is_recorded_and_counted(hub: Hub, socket: Socket) -> None:
    socket.last_pong_at = 0.0

    client_messages.receive_text(hub, socket, '{"messageType":"PONG","messagePayload":"ping-1"}')

    assert socket.take_sent() == []
    assert socket.last_pong_at > 0.0
    (entry,) = hub.record.of_kind("pong")
    assert entry.data == {"payload": "ping-1", "ignored": False}


def test_an_ignored_pong_is_recorded_but_not_counted(hub: Hub) -> None:
    deaf = Socket("conn-2", EXPIRY, send_queue_limit=10, ignore_pongs=True)
    deaf.last_pong_at = 0.0

    client_messages.receive_pong(hub, deaf, "ping-7")

    assert deaf.last_pong_at == 0.0
    assert hub.record.of_kind("pong")[0].data == {"payload": "ping-7", "ignored": True}


def _answer(job_id: str, app_message_id: str) -> str:
    return (
        f'{{"computeJobId":"{job_id}","messageType":"APP_MESSAGE_RESPONSE","messagePayload":'
        f'{{"appMessageId":"{app_message_id}","appMessage":{{"interruptSolve":true,'
        '"controls":{"XPRS_MAXTIME":5}}}}'
    )


def test_an_app_message_answer_resumes_the_waiting_solve(hub: Hub, socket: Socket) -> None:
    job = _job(hub, "job-1", "EXECUTING", [])
    pending = PendingAppMessage("INTSOL", {"problemName": "p", "attributes": {}})
    job.pending_app_message = pending
    hub.pending_app_messages[pending.id] = job

    client_messages.receive_text(hub, socket, _answer("job-1", pending.id))

    assert socket.take_sent() == []
    answer = pending.answer.result(timeout=0)
    assert answer.interrupt is True
    assert answer.controls == {"XPRS_MAXTIME": 5}
    assert job.pending_app_message is None
    assert hub.record.of_kind("app_message_response")[0].data["matched"] is True


def test_an_answer_to_no_waiting_app_message_answers_app_message_not_found(
    hub: Hub, socket: Socket
) -> None:
    _job(hub, "job-1", "EXECUTING", [])

    client_messages.receive_text(hub, socket, _answer("job-1", "no-such-message"))

    (error,) = _sent(socket)
    assert error["computeJobId"] == "job-1"
    assert error["messagePayload"]["errorType"] == "APP_MESSAGE_NOT_FOUND"
    assert hub.record.of_kind("app_message_response")[0].data["matched"] is False


def test_a_socket_that_falls_too_far_behind_is_closed_with_policy_violation(hub: Hub) -> None:
    slow = Socket("conn-3", EXPIRY, send_queue_limit=2)
    for job_id in ("a", "b", "c"):
        client_messages.receive_text(hub, slow, _subscribe(job_id, -1))

    assert slow.closed
    assert slow.close_code == CLOSE_POLICY
    assert slow.take_sent() == []


def test_expiring_every_token_moves_each_socket_expiry_to_now(hub: Hub, socket: Socket) -> None:
    hub.expire_tokens()

    assert socket.token_expires_at < EXPIRY
    assert [e.data for e in hub.record.of_kind("fault")] == [{"fault": "expire-tokens"}]


def test_a_drop_fault_at_a_status_closes_the_job_socket_instead_of_sending_it(
    hub: Hub, socket: Socket
) -> None:
    job = _job(hub, "job-1", "QUEUED", [])
    job.connection_id = socket.id
    hub.faults.add(faults.DropSocket(status="EXECUTING", close_code=4000))

    hub.set_status(job, "EXECUTING")

    assert socket.closed
    assert socket.close_code == 4000
    assert socket.take_sent() == []
