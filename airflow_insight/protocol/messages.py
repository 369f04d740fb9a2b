"""The WebSocket message codec, shared by the client and the emulator (reference §B4).

Every application message is a JSON text frame with the envelope
``{"computeJobId": ..., "messageType": ..., "messagePayload": {...}}``. Messages are frozen
dataclasses: what the server sends is named as a fact (``JobStatusUpdated``), what the client
sends as an imperative (``UpdateToken``).

The decoder for server messages is liberal (§A: both field spellings, unknown types and extra
fields are accepted); the decoder for client messages, used by the emulator, is strict. Both
raise :class:`~airflow_insight.exceptions.RemoteProtocolError` for text they cannot use.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

from airflow_insight.exceptions import LocalProtocolError, RemoteProtocolError

# messageType values, spelled as on the wire.
JOB_STATUS_UPDATED = "JOB_STATUS_UPDATED"
CURRENT_JOB_STATUS = "CURRENT_JOB_STATUS"
RUNLOG_UPDATED = "RUNLOG_UPDATED"
RUNLOG_COMPLETED = "RUNLOG_COMPLETED"
APP_MESSAGE = "APP_MESSAGE"
APP_MESSAGE_RESPONSE = "APP_MESSAGE_RESPONSE"
ERROR = "ERROR"
UPDATE_TOKEN = "UPDATE_TOKEN"
SUBSCRIBE = "SUBSCRIBE"
PING = "PING"
PONG = "PONG"

# errorType values: the two documented ones, and ours for a message that cannot be read
# (the documentation names no type for that case).
COMPUTE_JOB_NOT_FOUND = "COMPUTE_JOB_NOT_FOUND"
APP_MESSAGE_NOT_FOUND = "APP_MESSAGE_NOT_FOUND"
INVALID_MESSAGE = "INVALID_MESSAGE"
INVALID_TOKEN = "INVALID_TOKEN"

JsonObject = dict[str, Any]


# --------------------------------------------------------------------------- server -> client


@dataclasses.dataclass(frozen=True, slots=True)
class JobStatusReport:
    """A job's status as pushed by ``JOB_STATUS_UPDATED`` or ``CURRENT_JOB_STATUS``.

    ``current`` is true for the ``CURRENT_JOB_STATUS`` answer to a ``SUBSCRIBE``.
    """

    #: The wire name of the push; ``CURRENT_MESSAGE_TYPE`` is the answer to a ``SUBSCRIBE``.
    MESSAGE_TYPE: ClassVar[str] = JOB_STATUS_UPDATED
    CURRENT_MESSAGE_TYPE: ClassVar[str] = CURRENT_JOB_STATUS

    compute_job_id: str
    status: str
    model_status: str | None = None
    execution_attempts: int | None = None
    payload_url: str | None = None
    result_url: str | None = None
    run_log_url: str | None = None
    job_metrics_url: str | None = None
    current: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class RunLogUpdated:
    """A batch of run-log lines; ``start_line`` and ``end_line`` are inclusive, 0-based (§A6)."""

    MESSAGE_TYPE: ClassVar[str] = RUNLOG_UPDATED

    compute_job_id: str
    start_line: int
    lines: tuple[str, ...]
    end_line: int | None = None

    @property
    def last_line(self) -> int:
        """The number of the batch's last line, from the lines themselves when they disagree."""
        return self.start_line + len(self.lines) - 1


@dataclasses.dataclass(frozen=True, slots=True)
class RunLogCompleted:
    """The run log is final (may never be sent: never wait for it, §A6)."""

    MESSAGE_TYPE: ClassVar[str] = RUNLOG_COMPLETED

    compute_job_id: str
    total_lines: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class AppMessage:
    """A solver callback waiting for an ``APP_MESSAGE_RESPONSE`` (§A10)."""

    MESSAGE_TYPE: ClassVar[str] = APP_MESSAGE

    compute_job_id: str
    app_message_id: str
    app_message_type: str | None = None
    app_message_file: str | None = None
    app_message: Mapping[str, Any] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ErrorReported:
    """An ``ERROR`` message: the server could not process something the client sent."""

    MESSAGE_TYPE: ClassVar[str] = ERROR

    compute_job_id: str | None
    error_type: str | None
    error_message: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class PingReceived:
    """The JSON form of a server ping (§A2 defensive extra); answer with :class:`Pong`."""

    MESSAGE_TYPE: ClassVar[str] = PING

    payload: Any = None


@dataclasses.dataclass(frozen=True, slots=True)
class UnknownMessage:
    """A message whose ``messageType`` this client does not know; kept, never fatal."""

    message_type: str
    compute_job_id: str | None
    payload: Any


ServerMessage = (
    JobStatusReport
    | RunLogUpdated
    | RunLogCompleted
    | AppMessage
    | ErrorReported
    | PingReceived
    | UnknownMessage
)


# --------------------------------------------------------------------------- client -> server


@dataclasses.dataclass(frozen=True, slots=True)
class UpdateToken:
    """Hand the socket a fresh bearer token before the current one expires (§A3)."""

    MESSAGE_TYPE: ClassVar[str] = UPDATE_TOKEN

    token: str = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True, slots=True)
class Subscription:
    """One job in a ``SUBSCRIBE``: what the client already has of it (§A5)."""

    compute_job_id: str
    execution_attempts: int
    last_run_log_line: int


@dataclasses.dataclass(frozen=True, slots=True)
class Subscribe:
    """Route the events of these jobs to this socket and replay what the client missed."""

    MESSAGE_TYPE: ClassVar[str] = SUBSCRIBE

    subscriptions: tuple[Subscription, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class AppMessageResponse:
    """Acknowledge a solver callback (§A10, §B4.7.3): go on, or interrupt the solve; and
    optionally change solver controls (prefixed names, e.g. ``XPRS_MAXTIME``)."""

    MESSAGE_TYPE: ClassVar[str] = APP_MESSAGE_RESPONSE

    compute_job_id: str
    app_message_id: str
    interrupt_solve: bool = False
    #: Sent only when given (``controls`` is optional on the wire).
    controls: Mapping[str, Any] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Pong:
    """Answer a JSON ``PING`` with the same payload."""

    MESSAGE_TYPE: ClassVar[str] = PONG

    payload: Any = None


ClientMessage = UpdateToken | Subscribe | AppMessageResponse | Pong


# --------------------------------------------------------------------------- the type table

#: Every ``messageType`` this codec knows, spelled as on the wire, and the class it decodes to.
#: Both status types decode to :class:`JobStatusReport` (``current`` tells them apart).
#: :class:`UnknownMessage` has no entry: it stands for any type not in this table.
SERVER_MESSAGE_TYPES: Mapping[str, type[ServerMessage]] = {
    JobStatusReport.MESSAGE_TYPE: JobStatusReport,
    JobStatusReport.CURRENT_MESSAGE_TYPE: JobStatusReport,
    RunLogUpdated.MESSAGE_TYPE: RunLogUpdated,
    RunLogCompleted.MESSAGE_TYPE: RunLogCompleted,
    AppMessage.MESSAGE_TYPE: AppMessage,
    ErrorReported.MESSAGE_TYPE: ErrorReported,
    PingReceived.MESSAGE_TYPE: PingReceived,
}
CLIENT_MESSAGE_TYPES: Mapping[str, type[ClientMessage]] = {
    cls.MESSAGE_TYPE: cls for cls in (UpdateToken, Subscribe, AppMessageResponse, Pong)
}


# --------------------------------------------------------------------------- spellings


@dataclasses.dataclass(frozen=True, slots=True)
class Spelling:
    """How the server spells fields that changed between documentation versions (§B8).

    The client reads every spelling; the emulator writes the one it is switched to.
    """

    run_log_end_field: Literal["endLines", "endLine"] = "endLines"
    #: ``resultsUrl``, ``metricsUrl`` and ``prettyStatus`` as in the 2020 documentation.
    legacy_status_fields: bool = False


CURRENT_SPELLING = Spelling()
LEGACY_SPELLING = Spelling(run_log_end_field="endLine", legacy_status_fields=True)


# --------------------------------------------------------------------------- encoding


def _envelope(message_type: str, payload: Any, compute_job_id: str | None = None) -> str:
    document: JsonObject = {}
    if compute_job_id is not None:
        document["computeJobId"] = compute_job_id
    document["messageType"] = message_type
    document["messagePayload"] = payload
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def _status_payload(report: JobStatusReport, spelling: Spelling) -> JsonObject:
    payload: JsonObject = {
        "status": report.status,
        "modelStatus": report.model_status,
        "executionAttempts": report.execution_attempts,
        "payloadUrl": report.payload_url,
    }
    if spelling.legacy_status_fields:
        payload["resultsUrl"] = report.result_url
        payload["runLogUrl"] = report.run_log_url
        payload["metricsUrl"] = report.job_metrics_url
        payload["prettyStatus"] = report.status.replace("_", " ").title()
    else:
        payload["resultUrl"] = report.result_url
        payload["runLogUrl"] = report.run_log_url
        payload["jobMetricsUrl"] = report.job_metrics_url
    return payload


def encode_server_message(message: ServerMessage, spelling: Spelling = CURRENT_SPELLING) -> str:
    """Encode a server-to-client message as JSON text, in the given field spelling."""
    match message:
        case JobStatusReport():
            kind = CURRENT_JOB_STATUS if message.current else JOB_STATUS_UPDATED
            return _envelope(kind, _status_payload(message, spelling), message.compute_job_id)
        case RunLogUpdated():
            end = message.end_line if message.end_line is not None else message.last_line
            payload = {
                "startLine": message.start_line,
                spelling.run_log_end_field: end,
                "lines": list(message.lines),
            }
            return _envelope(RUNLOG_UPDATED, payload, message.compute_job_id)
        case RunLogCompleted():
            total = {"totalLines": message.total_lines}
            return _envelope(RUNLOG_COMPLETED, total, message.compute_job_id)
        case AppMessage():
            payload = {
                "appMessageId": message.app_message_id,
                "appMessageType": message.app_message_type,
                "appMessageFile": message.app_message_file,
                "appMessage": dict(message.app_message or {}),
            }
            return _envelope(APP_MESSAGE, payload, message.compute_job_id)
        case ErrorReported():
            payload = {"errorType": message.error_type, "errorMessage": message.error_message}
            return _envelope(ERROR, payload, message.compute_job_id)
        case PingReceived():
            return _envelope(PING, message.payload)
        case UnknownMessage():
            return _envelope(message.message_type, message.payload, message.compute_job_id)
    raise LocalProtocolError(f"not a server message: {type(message).__name__}")


def encode_client_message(message: ClientMessage) -> str:
    """Encode a client-to-server message as JSON text."""
    match message:
        case UpdateToken():
            if not message.token:
                raise LocalProtocolError("UPDATE_TOKEN needs a non-empty token")
            return _envelope(UPDATE_TOKEN, {"token": message.token})
        case Subscribe():
            subscriptions = [
                {
                    "computeJobId": item.compute_job_id,
                    "executionAttempts": item.execution_attempts,
                    "lastRunLogLine": item.last_run_log_line,
                }
                for item in message.subscriptions
            ]
            return _envelope(SUBSCRIBE, {"subscriptions": subscriptions})
        case AppMessageResponse():
            answer: JsonObject = {"interruptSolve": message.interrupt_solve}
            if message.controls:
                answer["controls"] = dict(message.controls)
            payload = {"appMessageId": message.app_message_id, "appMessage": answer}
            return _envelope(APP_MESSAGE_RESPONSE, payload, message.compute_job_id)
        case Pong():
            return _envelope(PONG, message.payload)
    raise LocalProtocolError(f"not a client message: {type(message).__name__}")


# --------------------------------------------------------------------------- decoding


def _load_envelope(text: str | bytes) -> tuple[str, str | None, Any]:
    if isinstance(text, bytes | bytearray):
        # A text frame's payload, undecoded (websocket-client with its UTF-8 check off): it
        # must be UTF-8 (RFC 6455 §5.6). json.loads would also guess UTF-16/32 from the bytes.
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RemoteProtocolError(f"message is not valid UTF-8: {exc.reason}") from exc
    try:
        document = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RemoteProtocolError(f"message is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        # Deeply nested arrays/objects exhaust the decoder's stack: bad input, not our bug.
        raise RemoteProtocolError("message is nested too deeply to decode") from exc
    if not isinstance(document, dict):
        raise RemoteProtocolError("message is not a JSON object")
    message_type = document.get("messageType")
    if not isinstance(message_type, str) or not message_type:
        raise RemoteProtocolError("message has no messageType")
    job_id = document.get("computeJobId")
    if job_id is not None and not isinstance(job_id, str):
        raise RemoteProtocolError(f"{message_type}: computeJobId is not a string")
    return message_type, job_id, document.get("messagePayload")


def _payload_object(message_type: str, payload: Any) -> Mapping[str, Any]:
    if payload is None:
        return {}
    if not isinstance(payload, Mapping):
        raise RemoteProtocolError(f"{message_type}: messagePayload is not a JSON object")
    return payload


def _optional_str(payload: Mapping[str, Any], *names: str) -> str | None:
    """The first of ``names`` present as a string; other types are ignored (liberal)."""
    for name in names:
        value = payload.get(name)
        if isinstance(value, str):
            return value
    return None


def _optional_int(payload: Mapping[str, Any], name: str) -> int | None:
    value = payload.get(name)
    # bool is an int in Python but never a count on the wire.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _required_job_id(message_type: str, job_id: str | None) -> str:
    if job_id is None:
        raise RemoteProtocolError(f"{message_type} without computeJobId")
    return job_id


def _decode_status(kind: str, job_id: str | None, payload: Mapping[str, Any]) -> JobStatusReport:
    status = _optional_str(payload, "status")
    if status is None:
        raise RemoteProtocolError(f"{kind} without a status")
    return JobStatusReport(
        compute_job_id=_required_job_id(kind, job_id),
        status=status,
        model_status=_optional_str(payload, "modelStatus"),
        execution_attempts=_optional_int(payload, "executionAttempts"),
        payload_url=_optional_str(payload, "payloadUrl"),
        result_url=_optional_str(payload, "resultUrl", "resultsUrl"),
        run_log_url=_optional_str(payload, "runLogUrl"),
        job_metrics_url=_optional_str(payload, "jobMetricsUrl", "metricsUrl"),
        current=kind == CURRENT_JOB_STATUS,
    )


def _decode_run_log(job_id: str | None, payload: Mapping[str, Any]) -> RunLogUpdated:
    start = _optional_int(payload, "startLine")
    lines = payload.get("lines")
    if start is None or start < 0:
        raise RemoteProtocolError("RUNLOG_UPDATED without a valid startLine")
    if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
        raise RemoteProtocolError("RUNLOG_UPDATED without a list of text lines")
    end = _optional_int(payload, "endLines")
    if end is None:
        end = _optional_int(payload, "endLine")
    return RunLogUpdated(
        compute_job_id=_required_job_id(RUNLOG_UPDATED, job_id),
        start_line=start,
        lines=tuple(lines),
        end_line=end,
    )


def decode_server_message(text: str | bytes) -> ServerMessage:
    """Decode a server-to-client message, liberally: unknown types and fields are kept."""
    message_type, job_id, raw_payload = _load_envelope(text)
    if message_type == PING:
        return PingReceived(raw_payload)
    if message_type not in SERVER_MESSAGE_TYPES:
        return UnknownMessage(message_type, job_id, raw_payload)
    payload = _payload_object(message_type, raw_payload)
    if message_type in (JOB_STATUS_UPDATED, CURRENT_JOB_STATUS):
        return _decode_status(message_type, job_id, payload)
    if message_type == RUNLOG_UPDATED:
        return _decode_run_log(job_id, payload)
    if message_type == RUNLOG_COMPLETED:
        job = _required_job_id(message_type, job_id)
        return RunLogCompleted(job, _optional_int(payload, "totalLines"))
    if message_type == APP_MESSAGE:
        app_message_id = _optional_str(payload, "appMessageId")
        if app_message_id is None:
            raise RemoteProtocolError("APP_MESSAGE without appMessageId")
        body = payload.get("appMessage")
        return AppMessage(
            compute_job_id=_required_job_id(message_type, job_id),
            app_message_id=app_message_id,
            app_message_type=_optional_str(payload, "appMessageType"),
            app_message_file=_optional_str(payload, "appMessageFile"),
            app_message=body if isinstance(body, Mapping) else None,
        )
    if message_type == ERROR:
        error_message = payload.get("errorMessage")
        return ErrorReported(
            compute_job_id=job_id,
            error_type=_optional_str(payload, "errorType"),
            # errorMessage's type is undocumented (§B9 #14): keep whatever came as text.
            error_message=None if error_message is None else str(error_message),
        )
    raise AssertionError(f"unhandled known message type {message_type}")  # pragma: no cover


def _strict_payload(message_type: str, raw_payload: Any) -> Mapping[str, Any]:
    if not isinstance(raw_payload, Mapping):
        raise RemoteProtocolError(f"{message_type}: messagePayload must be a JSON object")
    return raw_payload


def _strict_int(message_type: str, payload: Mapping[str, Any], name: str) -> int:
    value = payload.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise RemoteProtocolError(f"{message_type}: {name} must be an integer")
    return value


def _strict_str(message_type: str, payload: Mapping[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value:
        raise RemoteProtocolError(f"{message_type}: {name} must be a non-empty string")
    return value


def _decode_subscription(item: Any) -> Subscription:
    if not isinstance(item, Mapping):
        raise RemoteProtocolError("SUBSCRIBE: each subscription must be a JSON object")
    return Subscription(
        compute_job_id=_strict_str(SUBSCRIBE, item, "computeJobId"),
        execution_attempts=_strict_int(SUBSCRIBE, item, "executionAttempts"),
        last_run_log_line=_strict_int(SUBSCRIBE, item, "lastRunLogLine"),
    )


def decode_client_message(text: str | bytes) -> ClientMessage:
    """Decode a client-to-server message strictly, as the server does."""
    message_type, job_id, raw_payload = _load_envelope(text)
    if message_type == PONG:
        return Pong(raw_payload)
    payload = _strict_payload(message_type, raw_payload)
    if message_type == UPDATE_TOKEN:
        return UpdateToken(_strict_str(message_type, payload, "token"))
    if message_type == SUBSCRIBE:
        items = payload.get("subscriptions")
        if not isinstance(items, Sequence) or isinstance(items, str):
            raise RemoteProtocolError("SUBSCRIBE: subscriptions must be a JSON array")
        return Subscribe(tuple(_decode_subscription(item) for item in items))
    if message_type == APP_MESSAGE_RESPONSE:
        body = payload.get("appMessage")
        interrupt = body.get("interruptSolve", False) if isinstance(body, Mapping) else False
        controls = body.get("controls") if isinstance(body, Mapping) else None
        if controls is not None and not isinstance(controls, Mapping):
            raise RemoteProtocolError(f"{message_type}: controls must be a JSON object")
        return AppMessageResponse(
            compute_job_id=_required_job_id(message_type, job_id),
            app_message_id=_strict_str(message_type, payload, "appMessageId"),
            interrupt_solve=bool(interrupt),
            controls=controls,
        )
    raise RemoteProtocolError(f"unknown messageType {message_type!r}")
