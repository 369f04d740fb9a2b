"""v2 error bodies (§B1.4) and the aiohttp responses that carry them."""

from __future__ import annotations

import datetime
import json
import secrets
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from aiohttp import web

from airflow_insight.emulator.tokens import iso_utc
from airflow_insight.protocol.wire import V2_JSON

# Inner error codes spelled as in the reference's examples.
DOCUMENT_NOT_FOUND = "OPTI-Insight-Persistence-DocumentNotFound"
INVALID_VALUE = "FICO-Platform-Validation-InvalidValue"
FILE_TOO_LARGE = "FICO-Platform-Validation-FileTooLarge"


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def detail(target: str, message: str) -> dict[str, Any]:
    """One ErrorDetail naming the JSON property at fault."""
    return {
        "code": "FICO_PLATFORM_VALIDATION_INVALID_VALUE",
        "desc": "Invalid value",
        "message": message,
        "target": target,
        "timestamp": iso_utc(datetime.datetime.now(datetime.UTC)),
    }


def error_body(
    status: int,
    message: str,
    *,
    inner_code: str | None = None,
    details: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """An ErrorResponse document for ``status`` whose inner error says ``message``."""
    phrase = _phrase(status)
    inner = None
    if inner_code is not None:
        inner = {"code": inner_code, "desc": phrase, "message": message, "innerError": None}
    return {
        "error": {
            "code": f"FICO-Platform-Http-{status}",
            "desc": phrase,
            "message": message if inner is None else phrase,
            "innerError": inner,
            "details": list(details),
            "timestamp": iso_utc(datetime.datetime.now(datetime.UTC)),
            "traceId": secrets.token_hex(8),
            "spanId": secrets.token_hex(8),
            "parentId": secrets.token_hex(8),
        }
    }


def error_response(
    status: int,
    message: str,
    *,
    inner_code: str | None = None,
    details: Sequence[dict[str, Any]] = (),
    headers: dict[str, str] | None = None,
) -> web.Response:
    """A response with a v2 error body."""
    body = error_body(status, message, inner_code=inner_code, details=details)
    return web.Response(status=status, text=json.dumps(body), content_type=V2_JSON, headers=headers)


class ApiError(Exception):
    """Raised by a handler to answer with a v2 error body; the middleware renders it."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        inner_code: str | None = None,
        details: Sequence[dict[str, Any]] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.inner_code = inner_code
        self.details = details
        self.headers = headers

    def response(self) -> web.Response:
        """The response this error stands for."""
        return error_response(
            self.status,
            self.message,
            inner_code=self.inner_code,
            details=self.details,
            headers=self.headers,
        )
