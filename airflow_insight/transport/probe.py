"""A one-shot health check of an Insight connection, for Airflow's "Test connection" button.

The probe mints a token and makes one cheap authenticated call, then says in one sentence what
worked or what to fix. It talks to ``requests`` directly instead of going through the REST client
on purpose: a diagnostic must not retry or back off (the button should answer in seconds), and it
must tell apart failures the REST client rightly folds together (refused vs. DNS vs. TLS, "wrong
credentials" vs. "this is not an Insight server").

Who answered decides what a status means. An answer with an Insight v2 error body (§B1.4) is
Insight speaking: 429 or 5xx then means "overloaded or failing; try again later". Any other
answer (a plain web server's 501 to the POST, an HTML page, a bare 404) means "this is not an
Insight server", quoting what it answered; a bare 429/502/503/504 is what a proxy sends for a
stopped Insight behind it, and the message says both possibilities.

Messages never contain the client secret or a token: they are built from the server URL (user
info removed), HTTP status codes, the user's name from ``BearerTokenInfo`` and short excerpts of
answers from which the secret and the token are cut out (a foreign server may echo the request).
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
import socket
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from airflow_insight.protocol.wire import TOKEN_PATH, V2_JSON, V2_PLAIN
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport.errors import describe_error_body
from airflow_insight.transport.secrets import announce_secret

#: Accept header for minting: the token comes back as plain text or as a JSON string (§B9 #6).
_TOKEN_ACCEPT = f"text/plain, {V2_PLAIN}, {V2_JSON}"
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


def probe_server(
    settings: ConnectionSettings, *, session: requests.Session | None = None
) -> ProbeResult:
    """Mint a token and read it back (``GET api/authentication/token``); report the outcome.

    Never raises for network or server trouble: every failure becomes a ``ProbeResult`` whose
    message names the cause and what to check.
    """
    own_session = session is None
    http = requests.Session() if session is None else session
    try:
        token = _mint_token(http, settings)
        info = _read_token_info(http, settings, token)
    except _ProbeFailed as failure:
        return ProbeResult(ok=False, message=str(failure))
    finally:
        if own_session:
            http.close()
    return ProbeResult(ok=True, message=_success_message(settings, info))


def _mint_token(http: requests.Session, settings: ConnectionSettings) -> str:
    announce_secret(settings.client_secret)
    body = {
        "clientId": settings.client_id,
        "secret": settings.client_secret,
        "maxAge": settings.token_max_age_seconds,
    }
    response = _send(
        http,
        settings,
        "POST",
        data=json.dumps(body),
        headers={"Accept": _TOKEN_ACCEPT, "Content-Type": V2_JSON},
    )
    where = _display_url(settings.url(TOKEN_PATH))
    hidden = (settings.client_secret,)
    if response.status_code == 401:
        raise _ProbeFailed(
            f"The Insight server at {_server(settings)} refused the credentials (HTTP 401): "
            "check the client ID and client secret (generating a new pair in Insight revokes "
            "the old one)."
        )
    _raise_for_unexpected(response, settings, where, hidden)
    token = _token_from_body(response)
    if token is None:
        raise _ProbeFailed(
            f"{where} answered {_answer(response, hidden)} instead of a bearer token: "
            f"{_NOT_INSIGHT}"
        )
    announce_secret(token)
    return token


def _read_token_info(
    http: requests.Session, settings: ConnectionSettings, token: str
) -> Mapping[str, Any]:
    response = _send(
        http,
        settings,
        "GET",
        headers={"Accept": V2_JSON, "Authorization": f"Bearer {token}"},
    )
    where = _display_url(settings.url(TOKEN_PATH))
    hidden = (settings.client_secret, token)
    if response.status_code == 401:
        # The token was minted a moment ago, so a refusal points at something in between.
        raise _ProbeFailed(
            f"A token was issued by {_server(settings)} but refused right away (HTTP 401): "
            "a proxy may strip the Authorization header, or the server's clock is off."
        )
    _raise_for_unexpected(response, settings, where, hidden)
    try:
        info = response.json()
    except ValueError:
        info = None
    if not isinstance(info, dict):
        raise _ProbeFailed(
            f"{where} answered {_answer(response, hidden)} instead of token details: {_NOT_INSIGHT}"
        )
    return info


def _send(
    http: requests.Session,
    settings: ConnectionSettings,
    method: str,
    *,
    headers: Mapping[str, str],
    data: str | None = None,
) -> requests.Response:
    """Make one request; turn every network failure into a message that names its cause."""
    server = _server(settings)
    try:
        return http.request(
            method,
            settings.url(TOKEN_PATH),
            data=data,
            headers=dict(headers),
            timeout=(settings.connect_timeout_seconds, settings.read_timeout_seconds),
            verify=_verify(settings),
            # A redirect (e.g. to a login page) would turn a POST into a GET elsewhere.
            allow_redirects=False,
        )
    except requests.exceptions.SSLError as exc:
        raise _ProbeFailed(
            f"TLS handshake with {server} failed ({_root_cause(exc)}): if the server uses a "
            "private CA, set the connection extra ca_bundle_path to its PEM bundle "
            "(verify_tls=false only for test servers)."
        ) from exc
    except requests.exceptions.ProxyError as exc:
        raise _ProbeFailed(
            f"The HTTP proxy refused or failed the request to {server}: check HTTPS_PROXY / "
            "NO_PROXY for the Airflow workers."
        ) from exc
    except requests.exceptions.ConnectTimeout as exc:
        raise _ProbeFailed(
            f"No connection to {server} within {settings.connect_timeout_seconds:g} s: check the "
            "host, the port and any firewall between Airflow and Insight."
        ) from exc
    except requests.exceptions.ReadTimeout as exc:
        raise _ProbeFailed(
            f"{server} accepted the connection but did not answer within "
            f"{settings.read_timeout_seconds:g} s (read_timeout_seconds)."
        ) from exc
    except requests.exceptions.ConnectionError as exc:
        raise _ProbeFailed(_unreachable_message(server, exc)) from exc
    except requests.exceptions.RequestException as exc:
        raise _ProbeFailed(f"Cannot send a request to {server}: {type(exc).__name__}.") from exc


def _unreachable_message(server: str, exc: BaseException) -> str:
    causes = list(_causes(exc))
    if any(_is_name_resolution_failure(cause) for cause in causes):
        return f"Cannot reach {server}: the host name does not resolve (DNS); check the URL."
    if any(isinstance(cause, ConnectionRefusedError) for cause in causes):
        return (
            f"Cannot reach {server}: connection refused; check the host and port, and that "
            "the Insight server is running."
        )
    return f"Cannot reach {server} ({_root_cause(exc)}): check the URL and the network."


def _is_name_resolution_failure(cause: BaseException) -> bool:
    # urllib3 2 raises NameResolutionError around socket.gaierror; older stacks only the latter.
    return isinstance(cause, socket.gaierror) or type(cause).__name__ == "NameResolutionError"


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
        location = _display_url(response.headers.get("Location", "")).partition("?")[0]
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


def _token_from_body(response: requests.Response) -> str | None:
    """Read a token answered as plain text or as a JSON string; None for anything else."""
    if "html" in response.headers.get("Content-Type", "").lower():
        return None
    text = response.text.strip()
    if text.startswith('"'):
        try:
            decoded = json.loads(text)
        except ValueError:
            return None
        text = decoded.strip() if isinstance(decoded, str) else ""
    # A token is one opaque word; JSON objects, HTML and prose are not tokens.
    if not text or text[0] in "{[<" or any(ch.isspace() for ch in text):
        return None
    return text


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


def _verify(settings: ConnectionSettings) -> bool | str:
    if not settings.verify_tls:
        return False
    return settings.ca_bundle_path or True


def _server(settings: ConnectionSettings) -> str:
    return _display_url(settings.base_url)


def _display_url(url: str) -> str:
    """The URL without user info, so a password written into the URL never reaches a message."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and everything it was raised from or while handling, without cycles."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or any(current is known for known in seen):
            continue
        seen.append(current)
        todo.extend([current.__cause__, current.__context__, *_nested(current)])
    return seen


def _nested(exc: BaseException) -> list[BaseException]:
    # requests/urllib3 keep the underlying error in args (MaxRetryError.reason, args[0]).
    nested = [arg for arg in exc.args if isinstance(arg, BaseException)]
    reason = getattr(exc, "reason", None)
    if isinstance(reason, BaseException):
        nested.append(reason)
    return nested


def _root_cause(exc: BaseException) -> str:
    """A short description of the innermost error, e.g. 'certificate verify failed'."""
    causes = _causes(exc)
    if any("certificate verify failed" in str(cause).lower() for cause in causes):
        return "certificate verify failed"
    innermost = causes[-1]
    text = str(innermost)
    return type(innermost).__name__ if not text or len(text) > 120 else text
