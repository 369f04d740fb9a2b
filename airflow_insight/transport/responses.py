"""Reading Insight answers: the token text, the token's expiry, JSON documents, run-log text."""

from __future__ import annotations

import datetime
import json
from typing import Any

import requests

from airflow_insight.exceptions import RemoteProtocolError


def token_text(response: requests.Response) -> str:
    """Read a token sent as plain text or as a JSON string (§B9 #6), whitespace stripped.

    A token is one opaque word: an HTML page, a JSON document or prose is not one.
    """
    text = response.content.decode("utf-8", "replace").strip()
    if text.startswith('"'):
        try:
            decoded = json.loads(text)
        except ValueError:
            decoded = None
        text = decoded.strip() if isinstance(decoded, str) else ""
    html = "html" in response.headers.get("Content-Type", "").lower()
    if html or not text or text[0] in "{[<" or any(character.isspace() for character in text):
        raise RemoteProtocolError(
            "the Insight token endpoint answered 200 without a usable token; check that the"
            " connection's host points at an Insight 5 server (v2 API)"
        )
    return text


def expiry_epoch(info: Any) -> float | None:
    """Read ``access_token_expiration_time`` of a BearerTokenInfo as epoch seconds.

    ISO 8601 (UTC when no offset is given, §B1.3) or an epoch number in seconds or milliseconds;
    ``None`` when missing or unreadable.
    """
    value = info.get("access_token_expiration_time") if isinstance(info, dict) else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and value.strip():
        try:
            number = float(value)
        except ValueError:
            return _iso_epoch(value.strip())
    else:
        return None
    # An epoch past the year 5000 in seconds is in milliseconds.
    return number / 1000 if number > 1e11 else number


def _iso_epoch(text: str) -> float | None:
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def json_or_none(response: requests.Response) -> Any:
    """The JSON body, or ``None`` when the body is empty or not JSON."""
    try:
        return json.loads(response.content) if response.content.strip() else None
    except (ValueError, RecursionError):  # RecursionError: nested too deeply to decode
        return None


def json_object(response: requests.Response, description: str) -> dict[str, Any]:
    """The body as a JSON object; anything else is a :class:`RemoteProtocolError`."""
    document = json_or_none(response)
    if not isinstance(document, dict):
        raise RemoteProtocolError(
            f"{description}: the Insight server answered {response.status_code} without a JSON"
            " object; check that the connection points at an Insight 5 server"
        )
    return document


def decode_text(response: requests.Response) -> str:
    """The body as text: the declared charset, else UTF-8 (undecodable bytes replaced).

    ``requests`` would assume ISO-8859-1 for ``text/*`` without a charset; run logs are UTF-8.
    """
    content_type = response.headers.get("Content-Type", "")
    charset = "utf-8"
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"')
    try:
        return response.content.decode(charset, "replace")
    except LookupError:
        return response.content.decode("utf-8", "replace")
