"""What each client message on a progress socket does to the emulator, and what it answers.

Plain Python with no aiohttp: the pump hands in the text (or a pong, or a binary frame's size)
and the answers land in the :class:`~airflow_insight.emulator.sockets.Socket`'s send queue.
Tests feed literal wire text here and read the frames with ``Socket.take_sent``.

Every message is recorded (``ws_received``) except UPDATE_TOKEN and undecodable text, which may
hold a token: those are recorded by fingerprint or by size only. The protocol has no UNSUBSCRIBE
(a client unsubscribes by forgetting the job): it is an unknown type, answered like any other.
"""

from __future__ import annotations

from airflow_insight.emulator.hub import Hub
from airflow_insight.emulator.record import token_fingerprint
from airflow_insight.emulator.sockets import Socket
from airflow_insight.exceptions import RemoteProtocolError
from airflow_insight.protocol import messages as m


def receive_text(hub: Hub, socket: Socket, text: str) -> None:
    """Decode and act on one client message; anything unusable gets an ERROR message."""
    try:
        message = m.decode_client_message(text)
    except RemoteProtocolError as exc:
        # The text may hold a token (a broken UPDATE_TOKEN): record only its size.
        invalid = {"invalid": str(exc), "length": len(text)}
        hub.record.add("ws_received", invalid, connection_id=socket.id)
        socket.send_error(m.INVALID_MESSAGE, f"{exc}")
        return
    if isinstance(message, m.UpdateToken):
        _update_token(hub, socket, message.token)
        return
    hub.record.add("ws_received", {"text": text}, connection_id=socket.id)
    match message:
        case m.Subscribe():
            _subscribe(hub, socket, message)
        case m.AppMessageResponse():
            hub.answer_app_message(socket, message, dict(message.controls or {}))
        case m.Pong():
            receive_pong(hub, socket, message.payload)


def receive_pong(hub: Hub, socket: Socket, payload: object) -> None:
    """Record a pong (frame or JSON) and count it unless pongs are being ignored."""
    hub.record.add(
        "pong", {"payload": payload, "ignored": socket.ignore_pongs}, connection_id=socket.id
    )
    if not socket.ignore_pongs:
        socket.pong_counted()


def receive_binary(hub: Hub, socket: Socket, size: int) -> None:
    """A binary frame: recorded by size and refused, the socket stays open."""
    hub.record.add("ws_received", {"binary": size}, connection_id=socket.id)
    socket.send_error(m.INVALID_MESSAGE, "binary frames are not accepted; send JSON text")


def _update_token(hub: Hub, socket: Socket, token: str) -> None:
    record = hub.tokens.check(token)
    hub.record.add(
        "update_token",
        {"token": token_fingerprint(token), "valid": record is not None},
        connection_id=socket.id,
    )
    if record is None:
        # No acknowledgement for a good token (§A3); a bad one keeps the old expiry.
        socket.send_error(m.INVALID_TOKEN, "UPDATE_TOKEN carried an unknown or expired token")
        return
    socket.token_expires_at = record.expires_at


def _subscribe(hub: Hub, socket: Socket, message: m.Subscribe) -> None:
    for item in message.subscriptions:
        job = hub.jobs.get(item.compute_job_id)
        hub.record.add(
            "subscribe",
            {
                "executionAttempts": item.execution_attempts,
                "lastRunLogLine": item.last_run_log_line,
                "found": job is not None,
            },
            connection_id=socket.id,
            compute_job_id=item.compute_job_id,
        )
        if job is None:
            socket.send_error(
                m.COMPUTE_JOB_NOT_FOUND,
                f"no compute job with id {item.compute_job_id!r}",
                item.compute_job_id,
            )
            continue
        job.connection_id = socket.id
        hub.send_to(socket, job, job.report(current=True))
        # Per §B4.6 a finished job gets nothing more; a running one gets the missed lines.
        if not job.terminal and job.run_log_messages:
            hub.replay(socket, job, item.last_run_log_line)
        pending = job.pending_app_message
        if pending is not None and hub.config.resend_app_messages_on_subscribe:
            # §B4.6: a still-unanswered APP_MESSAGE is sent again, same appMessageId.
            hub.send_app_message(job, pending, connection=socket)
