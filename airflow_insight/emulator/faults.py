"""Faults the emulator can inject (protocol §A9), as frozen dataclasses.

Pass them to :meth:`Emulator.inject` (they then apply to every matching request, socket or job)
or put them in :attr:`JobScript.faults` (they then apply to that job only). ``times`` is how many
times a fault fires before it is used up; ``None`` means it never is. Job-related faults take a
``job_id`` glob (``fnmatch``) so a global fault can aim at some jobs only.

The command line builds the same values with :func:`parse_fault`.

Specs for ``--fault`` (repeatable)::

    http:METHOD:PATH:STATUS[:times=N][:retry-after=S]   http:POST:/api/compute-jobs:503:times=2
    delay:METHOD:PATH:SECONDS[:times=N]                 delay:GET:/api/compute-jobs/*:2.5
                                                        (on /ws too: a handshake never answered)
    huge-body:METHOD:PATH:MEGABYTES[:times=N]           (a 200 answer streaming that much JSON)
    trickle:METHOD:PATH:SECONDS[:times=N]               (a 200 answer, one byte every SECONDS)
    drop-socket:after=N | drop-socket:status=STATUS     [:times=N][:code=CLOSE_CODE][:job=GLOB]
    drop-socket:type=APP_MESSAGE                        (right after sending one; same options)
    refuse-handshake:STATUS[:times=N]                   refuse-handshake:503
    ignore-pongs[:times=N]                              (the socket is closed on missed pong)
    token-expiry:SECONDS[:times=N]                      (next sockets' tokens expire that soon)
    expire-tokens[:after=SECONDS]                       (tokens issued by then expire then)
    malformed-json[:job=GLOB][:times=N][:burst=FRAMES]
    huge-frame:MEGABYTES[:job=GLOB][:times=N]           (one text frame that large)
    unknown-message-type[:type=NAME][:job=GLOB][:times=N]
    unknown-job[:job=GLOB][:times=N]                    (a status message for a job that is not)
    missing-fields:FIELD,FIELD[:type=MESSAGE_TYPE][:job=GLOB][:times=N]
    extra-fields:NAME=VALUE,NAME=VALUE[:type=MESSAGE_TYPE][:job=GLOB][:times=N]
    legacy-fields[:job=GLOB][:times=N]                  (resultsUrl, metricsUrl, prettyStatus...)
    duplicate-runlog[:job=GLOB][:times=N]
    out-of-order-runlog[:job=GLOB][:times=N]
    requeue:after=N[:job=GLOB]                          (executionAttempts 2 after N lines)
    finish:STATUS[:model-status=VALUE][:job=GLOB]       finish:COMPLETED:model-status=ERROR

``times`` defaults to 1 everywhere except ``legacy-fields`` (unlimited); ``times=inf`` means
unlimited. Values in ``extra-fields`` are read as JSON when they parse, else as text.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from airflow_insight.exceptions import ConfigurationError


@dataclasses.dataclass(frozen=True)
class RestFault:
    """A fault aimed at REST calls by ``method`` and ``path`` (``*`` and ``fnmatch`` globs)."""

    method: str = "*"
    path: str = "*"


@dataclasses.dataclass(frozen=True)
class HttpError(RestFault):
    """Answer a REST call with this status and a v2 error body (``Retry-After`` for 429)."""

    status: int = 503
    times: int | None = 1
    retry_after_seconds: float | None = None


@dataclasses.dataclass(frozen=True)
class Delay(RestFault):
    """Hold the response to a REST call for ``seconds`` before handling it."""

    seconds: float = 1.0
    times: int | None = 1


@dataclasses.dataclass(frozen=True)
class HugeBody(RestFault):
    """Answer a REST call with 200 and a JSON-looking body of ``megabytes``, streamed (the
    emulator never holds it): a client must stop reading at its own limit."""

    megabytes: float = 300.0
    times: int | None = 1


@dataclasses.dataclass(frozen=True)
class Trickle(RestFault):
    """Answer a REST call with 200 and a short JSON body sent one byte every ``seconds``: each
    read gets a byte in time, so only a total deadline ends it."""

    seconds: float = 0.05
    times: int | None = 1


@dataclasses.dataclass(frozen=True)
class DropSocket:
    """Drop a socket after it sent ``after_messages`` messages, when a job reaches ``status``,
    or right after it sent a message of ``message_type`` (only ``APP_MESSAGE`` for now).

    At a status the socket is dropped *instead of* sending that status, so the client has to
    learn it again (``SUBSCRIBE`` or REST). After an ``APP_MESSAGE`` the client has the
    message, but its answer cannot arrive on that socket. ``close_code`` None aborts the TCP
    connection without a close frame; a number sends a close frame with that code first.
    """

    after_messages: int | None = None
    status: str | None = None
    close_code: int | None = None
    job_id: str = "*"
    times: int | None = 1
    message_type: str | None = None


@dataclasses.dataclass(frozen=True)
class RefuseHandshake:
    """Refuse the next WebSocket handshakes with this HTTP status and a v2 error body."""

    status: int = 503
    times: int | None = 1


@dataclasses.dataclass(frozen=True)
class IgnorePongs:
    """Disregard the pongs of the next sockets, so they are closed on missed pong."""

    times: int | None = 1


@dataclasses.dataclass(frozen=True)
class TokenExpiry:
    """Treat the token of the next sockets as expiring ``seconds`` after the handshake."""

    seconds: float = 0.1
    times: int | None = 1


@dataclasses.dataclass(frozen=True)
class ExpireTokens:
    """Expire every token issued so far, ``after_seconds`` after injection (or start).

    REST calls with those tokens then get 401 and their sockets close unless an
    ``UPDATE_TOKEN`` with a newer token arrives.
    """

    after_seconds: float = 0.0
    times: int | None = 1


@dataclasses.dataclass(frozen=True)
class MalformedJson:
    """Send ``burst`` text frames that are not JSON, before the job's next message."""

    job_id: str = "*"
    times: int | None = 1
    burst: int = 1


@dataclasses.dataclass(frozen=True)
class HugeFrame:
    """Send one text frame of ``megabytes`` (a ``RUNLOG_UPDATED`` padded far beyond any sane
    size), before the job's next message."""

    megabytes: float = 64.0
    job_id: str = "*"
    times: int | None = 1


@dataclasses.dataclass(frozen=True)
class UnknownMessageType:
    """Send a message with an unknown ``messageType``, before the job's next message."""

    message_type: str = "FUTURE_MESSAGE_TYPE"
    job_id: str = "*"
    times: int | None = 1


@dataclasses.dataclass(frozen=True)
class UnknownJobMessage:
    """Send a ``JOB_STATUS_UPDATED`` for a job id that does not exist, before the next message."""

    job_id: str = "*"
    times: int | None = 1


@dataclasses.dataclass(frozen=True)
class MissingFields:
    """Leave these payload fields out of the job's next message (of ``message_type``)."""

    fields: tuple[str, ...] = ("executionAttempts",)
    message_type: str = "*"
    job_id: str = "*"
    times: int | None = 1


@dataclasses.dataclass(frozen=True)
class ExtraFields:
    """Add these payload fields to the job's next message (of ``message_type``)."""

    fields: Mapping[str, Any] = dataclasses.field(default_factory=lambda: {"futureField": 1})
    message_type: str = "*"
    job_id: str = "*"
    times: int | None = 1


@dataclasses.dataclass(frozen=True)
class LegacyFields:
    """Spell the job's messages the 2020 way: resultsUrl, metricsUrl, prettyStatus, endLine."""

    job_id: str = "*"
    times: int | None = None


@dataclasses.dataclass(frozen=True)
class DuplicateRunLog:
    """Send the job's next ``RUNLOG_UPDATED`` batch twice."""

    job_id: str = "*"
    times: int | None = 1


@dataclasses.dataclass(frozen=True)
class OutOfOrderRunLog:
    """Hold the job's next ``RUNLOG_UPDATED`` batch back and send it after the message after it."""

    job_id: str = "*"
    times: int | None = 1


@dataclasses.dataclass(frozen=True)
class Requeue:
    """Requeue the job once after ``after_lines`` run-log lines (``executionAttempts`` 2)."""

    after_lines: int = 5
    job_id: str = "*"
    times: int | None = 1


@dataclasses.dataclass(frozen=True)
class FinishWith:
    """End the job with this status and ``modelStatus`` instead of the script's."""

    status: str = "FAILED"
    model_status: str | None = None
    job_id: str = "*"
    times: int | None = 1


Fault = (
    HttpError
    | Delay
    | HugeBody
    | Trickle
    | DropSocket
    | RefuseHandshake
    | IgnorePongs
    | TokenExpiry
    | ExpireTokens
    | MalformedJson
    | HugeFrame
    | UnknownMessageType
    | UnknownJobMessage
    | MissingFields
    | ExtraFields
    | LegacyFields
    | DuplicateRunLog
    | OutOfOrderRunLog
    | Requeue
    | FinishWith
)

FAULT_TYPES: tuple[type, ...] = (
    HttpError,
    Delay,
    HugeBody,
    Trickle,
    DropSocket,
    RefuseHandshake,
    IgnorePongs,
    TokenExpiry,
    ExpireTokens,
    MalformedJson,
    HugeFrame,
    UnknownMessageType,
    UnknownJobMessage,
    MissingFields,
    ExtraFields,
    LegacyFields,
    DuplicateRunLog,
    OutOfOrderRunLog,
    Requeue,
    FinishWith,
)


# --------------------------------------------------------------------------- spec parsing


def _split_spec(spec: str) -> tuple[str, list[str], dict[str, str]]:
    kind, *rest = spec.strip().split(":")
    positional: list[str] = []
    options: dict[str, str] = {}
    for item in rest:
        # A positional path or list may itself hold "=" (extra-fields), so only known option
        # names are options.
        name, sep, value = item.partition("=")
        if sep and name in _OPTION_NAMES:
            options[name] = value
        else:
            positional.append(item)
    return kind.strip().lower(), positional, options


_OPTION_NAMES = frozenset(
    {"times", "retry-after", "after", "status", "code", "job", "type", "model-status", "burst"}
)


def _times(options: Mapping[str, str], default: int | None = 1) -> int | None:
    value = options.get("times")
    if value is None:
        return default
    if value in ("inf", "always", "forever"):
        return None
    return int(value)


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def _need(positional: list[str], count: int, spec: str) -> list[str]:
    if len(positional) < count:
        raise ConfigurationError(f"fault spec {spec!r} needs {count} positional part(s)")
    return positional


def _build(kind: str, pos: list[str], opts: dict[str, str], spec: str) -> Fault:
    job = opts.get("job", "*")
    times = _times(opts)
    if kind == "http":
        method, path, http_status = _need(pos, 3, spec)[:3]
        retry = opts.get("retry-after")
        return HttpError(
            method.upper(), path, int(http_status), times, float(retry) if retry else None
        )
    if kind == "delay":
        method, path, seconds = _need(pos, 3, spec)[:3]
        return Delay(method.upper(), path, float(seconds), times)
    if kind in ("huge-body", "trickle"):
        method, path, amount = _need(pos, 3, spec)[:3]
        built = HugeBody if kind == "huge-body" else Trickle
        return built(method.upper(), path, float(amount), times)
    if kind == "huge-frame":
        return HugeFrame(float(_need(pos, 1, spec)[0]), job, times)
    if kind == "drop-socket":
        after, status, code = opts.get("after"), opts.get("status"), opts.get("code")
        message_type = opts.get("type")
        if [after, status, message_type].count(None) != 2:
            raise ConfigurationError(
                f"fault spec {spec!r} needs exactly one of after= / status= / type="
            )
        return DropSocket(
            int(after) if after else None,
            status,
            int(code) if code else None,
            job,
            times,
            message_type.upper() if message_type else None,
        )
    if kind == "refuse-handshake":
        return RefuseHandshake(int(pos[0]) if pos else 503, times)
    if kind == "ignore-pongs":
        return IgnorePongs(times)
    if kind == "token-expiry":
        return TokenExpiry(float(_need(pos, 1, spec)[0]), times)
    if kind == "expire-tokens":
        return ExpireTokens(float(opts.get("after", "0")), times)
    if kind == "malformed-json":
        return MalformedJson(job, times, int(opts.get("burst", "1")))
    if kind == "unknown-message-type":
        return UnknownMessageType(opts.get("type", "FUTURE_MESSAGE_TYPE"), job, times)
    if kind == "unknown-job":
        return UnknownJobMessage(job, times)
    if kind == "missing-fields":
        names = tuple(n for n in _need(pos, 1, spec)[0].split(",") if n)
        return MissingFields(names, opts.get("type", "*"), job, times)
    if kind == "extra-fields":
        pairs = (item.partition("=") for item in _need(pos, 1, spec)[0].split(","))
        fields = {name: _json_or_text(value) for name, _, value in pairs if name}
        return ExtraFields(fields, opts.get("type", "*"), job, times)
    if kind == "legacy-fields":
        return LegacyFields(job, _times(opts, None))
    if kind == "duplicate-runlog":
        return DuplicateRunLog(job, times)
    if kind == "out-of-order-runlog":
        return OutOfOrderRunLog(job, times)
    if kind == "requeue":
        return Requeue(int(opts.get("after", "5")), job, times)
    if kind == "finish":
        final = _need(pos, 1, spec)[0].upper()
        return FinishWith(final, opts.get("model-status"), job, times)
    raise ConfigurationError(f"unknown fault kind {kind!r} in {spec!r}")


def parse_fault(spec: str) -> Fault:
    """Build a fault from its command-line spec (syntax in the module docstring)."""
    kind, positional, options = _split_spec(spec)
    try:
        return _build(kind, positional, options, spec)
    except ValueError as exc:
        raise ConfigurationError(f"bad fault spec {spec!r}: {exc}") from exc
