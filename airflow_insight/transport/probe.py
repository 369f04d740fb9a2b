"""A one-shot health check of an Insight connection, for Airflow's "Test connection" button.

The probe mints a token and reads it back, then says in one sentence what worked or what to fix.
It sends through the REST client's one-exchange entry points, so TLS, URL display, network error
mapping and token parsing follow the REST client's rules; what it adds is the reading of every
answer: no retry or back-off (the button answers in seconds), and a status means what its sender
makes it mean. An answer with an Insight v2 error body (§B1.4) is Insight speaking: 429 or 5xx
then means "overloaded or failing; try again later". Any other answer (a plain web server's 501,
an HTML page, a bare 404) means "this is not an Insight server", quoting what it answered; a bare
429/502/503/504 is what a proxy sends for a stopped Insight behind it, and the message says both.

Messages never contain the client secret or a token: they are built from the server URL (user
info removed), HTTP status codes, the user's name from ``BearerTokenInfo`` and short excerpts of
answers from which the secret and the token are cut out (a foreign server may echo the request).
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
from collections.abc import Collection, Mapping
from typing import Any

import requests

from airflow_insight.exceptions import InsightError, RemoteProtocolError
from airflow_insight.protocol.wire import TOKEN_PATH
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport.errors import describe_error_body
from airflow_insight.transport.network import display_url
from airflow_insight.transport.responses import json_or_none, token_text
from airflow_insight.transport.rest import InsightRestClient
from airflow_insight.transport.secrets import announce_secret

#: Statuses a proxy or load balancer sends on its own when the server behind it is down,
#: restarting or throttled; without an Insight error body they do not prove the URL is wrong.
_GATEWAY_STATUSES = frozenset({429, 502, 503, 504})
#: Longest excerpt of a foreign answer quoted in a message.
_EXCERPT_CHARS = 100


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    """The outcome of :func:`probe_server`: whether it worked and a message for the user."""

    ok: bool
    message: str


class _ProbeFailed(Exception):
    """Internal: carries the user-facing message of a failed step."""


def probe_server(settings: ConnectionSettings) -> ProbeResult:
    """Mint a token and read it back (``GET api/authentication/token``); report the outcome.

    Never raises for network or server trouble: every failure becomes a ``ProbeResult`` whose
    message names the cause and what to check.
    """
    try:
        with InsightRestClient(settings) as rest:
            token = _mint_token(rest, settings)
            info = _read_token_info(rest, settings, token)
    except _ProbeFailed as failure:
        return ProbeResult(ok=False, message=str(failure))
    except InsightError as exc:  # the REST client's own messages: network, TLS, a bad extra
        return ProbeResult(ok=False, message=f"{_capitalized(str(exc))}.")
    return ProbeResult(ok=True, message=_success_message(settings, info))


def _mint_token(rest: InsightRestClient, settings: ConnectionSettings) -> str:
    response = rest.token_request_once()
    where = display_url(settings.url(TOKEN_PATH))
    hidden = (settings.client_secret,)
    if response.status_code == 401:
        raise _ProbeFailed(
            f"The Insight server at {_server(settings)} refused the credentials (HTTP 401): "
            "check the client ID and client secret (generating a new pair in Insight revokes "
            "the old one)."
        )
    _raise_for_unexpected(response, settings, where, hidden)
    try:
        token = token_text(response)
    except RemoteProtocolError:
        raise _ProbeFailed(
            f"{where} answered {_answer(response, hidden)} instead of a bearer token: "
            f"{_NOT_INSIGHT}"
        ) from None
    announce_secret(token)
    return token


def _read_token_info(
    rest: InsightRestClient, settings: ConnectionSettings, token: str
) -> Mapping[str, Any]:
    response = rest.token_info_once(token)
    where = display_url(settings.url(TOKEN_PATH))
    hidden = (settings.client_secret, token)
    if response.status_code == 401:
        # The token was minted a moment ago, so a refusal points at something in between.
        raise _ProbeFailed(
            f"A token was issued by {_server(settings)} but refused right away (HTTP 401): "
            "a proxy may strip the Authorization header, or the server's clock is off."
        )
    _raise_for_unexpected(response, settings, where, hidden)
    info = json_or_none(response)
    if not isinstance(info, dict):
        raise _ProbeFailed(
            f"{where} answered {_answer(response, hidden)} instead of token details: {_NOT_INSIGHT}"
        )
    return info


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


_NOT_INSIGHT = (
    "this is not an Insight server (Insight 5, v2 REST API); check the server URL, its port and "
    "any path prefix."
)


def _raise_for_unexpected(
    response: requests.Response,
    settings: ConnectionSettings,
    where: str,
    hidden: Collection[str],
) -> None:
    """Raise a message for every status other than 200 (401 is handled by the callers).

    What the status means depends on who sent it: an answer with an Insight v2 error body
    (§B1.4) is Insight telling us something; any other answer came from a server that is not
    Insight, or from a proxy in front of it, and the message quotes what it said.
    """
    if response.status_code == 200:
        return
    insight_error = _insight_error(response)
    if insight_error is not None:
        raise _ProbeFailed(_insight_refusal(response.status_code, settings, where, insight_error))
    raise _ProbeFailed(_foreign_answer(response, where, _answer(response, hidden)))


def _insight_refusal(status: int, settings: ConnectionSettings, where: str, error: str) -> str:
    """The message for a non-200 answer that carries an Insight error body."""
    answered = f"{where} answered HTTP {status} ({error})"
    if status in (404, 405):
        return (
            f"{answered}: the server has no Insight 5 token endpoint at this URL; check the path "
            "prefix (Insight 4 servers offer only the v1 API, which this provider does not use)."
        )
    if status in (406, 415):
        return f"{answered}: {_MEDIA_TYPES}"
    if status in (400, 422):
        return (
            f"{answered}: the token request was rejected; check the max_age_seconds extra (a "
            "positive whole number of seconds)."
        )
    if status == 403:
        return (
            f"{_server(settings)} answered HTTP 403 ({error}): the credentials were recognised "
            "but this user may not use the REST API."
        )
    if status == 429 or status >= 500:
        return (
            f"{_server(settings)} answered HTTP {status} ({error}): the server is overloaded or "
            "failing; try again later."
        )
    return f"{answered}, which Insight does not send for a token request."


_MEDIA_TYPES = (
    "the server does not accept the Insight v2 media types; it is not an Insight 5 v2 server, "
    "or a proxy rewrites the headers."
)


def _foreign_answer(response: requests.Response, where: str, answer: str) -> str:
    """The message for a non-200 answer without an Insight error body."""
    status = response.status_code
    if 300 <= status < 400:
        # Without its query: a login page's query may carry state we have no business showing.
        location = display_url(response.headers.get("Location", ""))
        return (
            f"{where} answered {answer}, a redirect to {location or 'nowhere'}: Insight answers "
            f"the token request itself, so {_NOT_INSIGHT}"
        )
    if status in (406, 415):
        return f"{where} answered {answer}: {_MEDIA_TYPES}"
    if status in _GATEWAY_STATUSES:
        # Not "overloaded": nothing says Insight sent it. Not "not Insight" either: a proxy in
        # front of a stopped Insight answers just like this.
        return (
            f"{where} answered {answer}, not an answer from Insight: a proxy or load balancer "
            "answered instead, because the Insight server behind it is down, restarting or "
            "throttled (try again later), or the URL does not point at Insight (check it)."
        )
    return f"{where} answered {answer}: {_NOT_INSIGHT}"


def _insight_error(response: requests.Response) -> str | None:
    """The text of an Insight v2 error body (§B1.4); None when the body is not one."""
    try:
        document = json.loads(response.text)
    except (ValueError, RecursionError):
        return None
    error = document.get("error") if isinstance(document, dict) else None
    if not isinstance(error, dict) or not any(key in error for key in ("code", "desc", "message")):
        return None
    return describe_error_body(response.text) or "no message"


def _answer(response: requests.Response, hidden: Collection[str]) -> str:
    """What a server answered, for a message: status, content type and a short excerpt.

    Anything in ``hidden`` (the secret, a token) is cut out: a server that is not Insight may
    echo the request it got.
    """
    excerpt = _excerpt(response)
    for secret in hidden:
        if secret:
            excerpt = excerpt.replace(secret, "***")
    quoted = f": {json.dumps(excerpt, ensure_ascii=False)}" if excerpt else ", empty body"
    return f"HTTP {response.status_code} ({_content_kind(response)}{quoted})"


def _excerpt(response: requests.Response) -> str:
    text = response.text
    if "html" in response.headers.get("Content-Type", "").lower() or text.lstrip()[:1] == "<":
        text = _html_text(text)
    text = " ".join(text.split())
    return text if len(text) <= _EXCERPT_CHARS else text[: _EXCERPT_CHARS - 3] + "..."


def _html_text(page: str) -> str:
    """The words of an HTML page's body (its title when the body has none)."""
    title = re.search(r"(?is)<title[^>]*>(.*?)</title\s*>", page)
    body = re.sub(r"(?is)<(head|script|style)\b.*?</\1\s*>", " ", page)
    words = " ".join(html.unescape(re.sub(r"<[^>]*>", " ", body)).split())
    return words or (html.unescape(title.group(1)) if title else "")


def _success_message(settings: ConnectionSettings, info: Mapping[str, Any]) -> str:
    user = _as_text(info.get("cn")) or _as_text(info.get("uid"))
    who = f" as {user}" if user else ""
    expiry = _as_text(info.get("access_token_expiration_time"))
    until = f"; token valid until {expiry}" if expiry else ""
    return f"Connected to the Insight server at {_server(settings)}{who}{until}."


def _as_text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _content_kind(response: requests.Response) -> str:
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
    return f"content type {content_type}" if content_type else "no content type"


def _server(settings: ConnectionSettings) -> str:
    return display_url(settings.base_url)
