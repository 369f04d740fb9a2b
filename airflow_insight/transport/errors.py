"""Turn an Insight v2 error answer (§B1.4) into one exception of :mod:`airflow_insight.exceptions`.

Pure functions: they take the status, the body and what was being done, and never do I/O. Both
the REST client and the two WebSocket drivers (for a refused handshake) map statuses here.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from airflow_insight.exceptions import (
    AuthenticationError,
    ConfigurationError,
    InsightError,
    InsightTimeout,
    JobNotFound,
    LocalProtocolError,
    PermissionDenied,
    ServerError,
    SubmitRejected,
    TransportError,
)
from airflow_insight.transport.network import certificate_rejected, display_url

#: Longest server-provided text kept in an exception message.
MAX_DETAIL_CHARS = 500

# The server JavaScript-escapes ``message`` before JSON-encoding it (§B1.4 quirk).
_JS_ESCAPE = re.compile(r"\\(['\"\\/btnrf])")
_JS_UNESCAPED = {"'": "'", '"': '"', "\\": "\\", "/": "/", "b": "\b", "t": "\t", "n": "\n"}
_JS_UNESCAPED |= {"r": "\r", "f": "\f"}


@dataclasses.dataclass(frozen=True)
class Operation:
    """What the client was doing, for the message and the mapping of an error status."""

    #: Human description, e.g. ``"submitting compute job 'nightly-1'"``.
    description: str
    #: The compute job concerned, if any: a 404 then means :class:`JobNotFound`.
    compute_job_id: str | None = None
    #: True for ``POST /api/compute-jobs``: 4xx answers then mean :class:`SubmitRejected`.
    is_submit: bool = False
    #: True for the token endpoint: 401 means the client id or secret is wrong.
    is_token: bool = False


def unescape_js(text: str) -> str:
    """Undo the server's JavaScript-string escaping of error messages."""
    return _JS_ESCAPE.sub(lambda match: _JS_UNESCAPED[match.group(1)], text)


def _text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return unescape_js(value.strip())
    return None


def _details(error: dict[str, Any]) -> list[str]:
    details = error.get("details")
    found: list[str] = []
    for detail in details if isinstance(details, list) else []:
        if not isinstance(detail, dict):
            continue
        message = _text(detail.get("message")) or _text(detail.get("desc"))
        target = _text(detail.get("target"))
        if message:
            found.append(f"{target}: {message}" if target else message)
    return found


def describe_error_body(body: bytes | str) -> str | None:
    """Return the human-readable text of a v2 error body, or ``None`` if there is none.

    Prefers ``innerError.message``, then ``message``, then ``desc`` (as FICO's own client does)
    and appends the ``details`` messages with their targets. A short non-JSON text body (from a
    proxy, say) is returned as is; HTML pages are not.
    """
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = text.strip()
    if not text:
        return None
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply to be an error body
        if text.startswith("<") or "\n" in text:
            return None
        return _clip(text)
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, dict):
        error = document if isinstance(document, dict) else {}
    inner = error.get("innerError")
    inner_message = _text(inner.get("message")) if isinstance(inner, dict) else None
    headline = inner_message or _text(error.get("message")) or _text(error.get("desc"))
    parts = ([headline] if headline else []) + _details(error)
    return _clip("; ".join(parts)) if parts else None


def _clip(text: str) -> str:
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 3] + "..."


def error_for_status(
    status: int,
    detail: str | None,
    operation: Operation,
    *,
    retry_after_seconds: float | None = None,
    server: str = "",
) -> InsightError:
    """Map an HTTP error status to the exception the caller gets.

    ``detail`` is the server's message (already free of secrets). Every message says what the
    reader can do about it. ``server`` names the server and its Airflow connection where
    the fix is in the connection (a refused secret).
    """
    said = f"HTTP {status}" + (f": {detail}" if detail else "")
    what = operation.description
    if status == 401:
        where = f" {server}" if server else ""
        return AuthenticationError(
            f"{what} failed: the Insight server{where} refused the credentials ({said}); check"
            " the client id (login) and secret (password) of the Airflow connection"
        )
    if status == 403:
        return PermissionDenied(
            f"{what} failed: the Insight user of this client id may not do this ({said}); ask an"
            " Insight administrator for the needed rights"
        )
    if status == 404 and operation.is_token:
        return ConfigurationError(
            f"{what} failed: no Insight token endpoint at this address ({said}); check the host"
            " and path prefix of the Airflow connection"
        )
    if status == 404 and operation.compute_job_id is not None:
        return JobNotFound(
            f"{what} failed: compute job {operation.compute_job_id!r} does not exist (any more)"
            f" on the Insight server ({said})",
            compute_job_id=operation.compute_job_id,
        )
    if status == 429 or status >= 500:
        return ServerError(
            f"{what} failed: the Insight server is unavailable or overloaded ({said}); retry"
            " later, and check the server's health if it persists",
            status_code=status,
            retry_after_seconds=retry_after_seconds,
        )
    if operation.is_submit and status in (400, 409, 422):
        return SubmitRejected(_submit_rejection(status, said, operation), status_code=status)
    if status in (406, 415):
        return LocalProtocolError(
            f"{what} failed: the Insight server refused our media type ({said}); this Insight"
            " version may not speak the v2 API, or this is a bug in airflow-insight"
        )
    return InsightError(f"{what} failed: the Insight server answered {said}")


def _submit_rejection(status: int, said: str, operation: Operation) -> str:
    what = operation.description
    if status == 409:
        return (
            f"{what} was refused: a compute job with id {operation.compute_job_id!r} already"
            f" exists ({said}); choose another id, or re-attach to the existing job"
        )
    return f"{what} was refused: the server found the job request invalid ({said}); fix the request"


def handshake_error(status: int, url: str) -> InsightError:
    """The exception for a progress-socket handshake refused with HTTP ``status``.

    The message carries the URL and the status only (never a header, so never the token).
    """
    what = f"the Insight progress socket {url} refused the handshake (HTTP {status})"
    if status == 401:
        return AuthenticationError(f"{what}: the bearer token was not accepted")
    if status == 403:
        return PermissionDenied(f"{what}: this Insight user may not open it")
    if status == 429 or status >= 500:
        return ServerError(f"{what}: the server is busy or failing", status_code=status)
    return TransportError(f"{what}: check the server URL and any path prefix")


def socket_open_timed_out(url: str) -> InsightTimeout:
    """The exception for a progress-socket handshake that did not finish in time."""
    return InsightTimeout(f"opening the Insight progress socket {url} timed out")


def socket_open_failed(url: str, exc: BaseException) -> TransportError:
    """The exception for a progress socket that could not be opened below HTTP (``exc``)."""
    rejected = certificate_rejected(display_url(url), exc)
    if rejected is not None:
        return rejected
    return TransportError(
        f"cannot open the Insight progress socket {url} ({type(exc).__name__}: {exc}); "
        "check the server URL, the network and the TLS settings of the connection"
    )
