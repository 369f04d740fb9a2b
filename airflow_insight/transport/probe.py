"""A one-shot health check of an Insight connection, for Airflow's "Test connection" button.

The probe mints a token and makes one cheap authenticated call, then says in one sentence what
worked or what to fix. It talks to ``requests`` directly instead of going through the REST client
on purpose: a diagnostic must not retry or back off (the button should answer in seconds), and it
must tell apart failures the REST client rightly folds together (refused vs. DNS vs. TLS, "wrong
credentials" vs. "this is not an Insight server").

Messages never contain the client secret or a token: they are built only from the server URL
(user info removed), HTTP status codes and the user's name from ``BearerTokenInfo``.
"""

from __future__ import annotations

import dataclasses
import json
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from airflow_insight.protocol.wire import TOKEN_PATH, V2_JSON, V2_PLAIN
from airflow_insight.settings import ConnectionSettings

#: Accept header for minting: the token comes back as plain text or as a JSON string (§B9 #6).
_TOKEN_ACCEPT = f"text/plain, {V2_PLAIN}, {V2_JSON}"


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
    if response.status_code == 401:
        raise _ProbeFailed(
            f"The Insight server at {_server(settings)} refused the credentials (HTTP 401): "
            "check the client ID and client secret (generating a new pair in Insight revokes "
            "the old one)."
        )
    _raise_for_unexpected(response, settings, where)
    token = _token_from_body(response)
    if token is None:
        raise _ProbeFailed(
            f"{where} answered HTTP {response.status_code} but not with a bearer token "
            f"({_content_kind(response)}): the server URL does not point at an Insight 5 server "
            "(check the URL and any path prefix)."
        )
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
    if response.status_code == 401:
        # The token was minted a moment ago, so a refusal points at something in between.
        raise _ProbeFailed(
            f"A token was issued by {_server(settings)} but refused right away (HTTP 401): "
            "a proxy may strip the Authorization header, or the server's clock is off."
        )
    _raise_for_unexpected(response, settings, where)
    try:
        info = response.json()
    except ValueError:
        info = None
    if not isinstance(info, dict):
        raise _ProbeFailed(
            f"{where} did not answer with token details ({_content_kind(response)}): "
            "the server URL does not point at an Insight 5 server."
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


def _raise_for_unexpected(
    response: requests.Response, settings: ConnectionSettings, where: str
) -> None:
    """Raise a message for every status other than 200 (401 is handled by the callers)."""
    status = response.status_code
    if status == 200:
        return
    if status in (404, 405) or 300 <= status < 400:
        raise _ProbeFailed(
            f"{where} answered HTTP {status}: there is no Insight 5 (v2 API) server at this URL; "
            "check the server URL and any path prefix."
        )
    if status in (406, 415):
        raise _ProbeFailed(
            f"{where} answered HTTP {status}: the server does not accept the Insight v2 media "
            "types; it is not an Insight 5 v2 server, or a proxy rewrites the headers."
        )
    if status in (400, 422):
        raise _ProbeFailed(
            f"{where} rejected the token request (HTTP {status}): check token_max_age_seconds "
            "(a positive number of seconds)."
        )
    if status == 403:
        raise _ProbeFailed(
            f"{_server(settings)} answered HTTP 403 (forbidden): the credentials were "
            "recognised but this user may not use the REST API."
        )
    if status == 429 or status >= 500:
        raise _ProbeFailed(
            f"{_server(settings)} answered HTTP {status}: the server is overloaded or failing; "
            "try again later."
        )
    raise _ProbeFailed(f"{where} answered HTTP {status}, which an Insight server does not send.")


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
