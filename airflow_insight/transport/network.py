"""Below HTTP: ``requests`` exceptions mapped once into :mod:`airflow_insight.exceptions`, and
the TLS context both WebSocket drivers use.

Every message names the server (without user info or query) and says what to check; none carries
a header, so no token or secret can leak through them.
"""

from __future__ import annotations

import ssl
from typing import NoReturn
from urllib.parse import urlsplit

import requests

from airflow_insight.exceptions import InsightTimeout, TransportError
from airflow_insight.settings import ConnectionSettings


class NetworkFailure(Exception):
    """One HTTP exchange failed below HTTP; internal to the transport, never raised to callers.

    It carries the exception the caller gets and whether the exchange may be tried again.
    """

    def __init__(self, error: TransportError, cause: BaseException, *, retryable: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.cause = cause
        #: True when the request may be sent again as it is (idempotent calls).
        self.retryable = retryable
        #: True when the server may have acted on the request (a submit must GET before resending).
        self.outcome_unknown = retryable or isinstance(error, InsightTimeout)

    def reraise(self) -> NoReturn:
        """Raise the mapped exception, chained to the ``requests`` one."""
        raise self.error from self.cause


def network_failure(
    exc: requests.exceptions.RequestException,
    *,
    base_url: str,
    method: str,
    url: str,
    connect_timeout_seconds: float,
    read_timeout_seconds: float,
) -> NetworkFailure:
    """Map a ``requests`` exception; TLS and read-timeout failures are not worth retrying at once.

    A read timeout is not retried for ordinary calls: each try would wait the full read timeout
    again. (A submission still checks whether its job exists, see the REST client.)
    """
    where = display_url(base_url)
    reason = _reason(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        error = TransportError(
            f"TLS with the Insight server at {where} failed ({reason}); check the certificate:"
            " set ca_bundle_path to the CA bundle that signed it, or (for a test server only)"
            " verify_tls=false in the connection extras"
        )
        return NetworkFailure(error, exc, retryable=False)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        error = InsightTimeout(
            f"could not connect to the Insight server at {where} within"
            f" {connect_timeout_seconds:g} s (connect_timeout_seconds); check the host, port and"
            " firewall"
        )
        return NetworkFailure(error, exc, retryable=True)
    if isinstance(exc, requests.exceptions.Timeout):
        error = InsightTimeout(
            f"{method} {display_url(url)}: no answer from the Insight server within"
            f" {read_timeout_seconds:g} s (read_timeout_seconds); the server may be overloaded:"
            " retry later or raise the timeout"
        )
        return NetworkFailure(error, exc, retryable=False)
    if isinstance(
        exc, requests.exceptions.ConnectionError | requests.exceptions.ChunkedEncodingError
    ):
        error = TransportError(
            f"could not talk to the Insight server at {where} ({reason}); check the host and port"
            " of the connection and that the server is running"
        )
        return NetworkFailure(error, exc, retryable=True)
    error = TransportError(f"{method} {display_url(url)} failed ({reason})")
    return NetworkFailure(error, exc, retryable=False)


def display_url(url: str) -> str:
    """The URL without user info or query, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}" if parts.scheme else parts.path


def _reason(exc: BaseException) -> str:
    """The innermost cause of a ``requests``/``urllib3`` error, short enough for a message."""
    current = exc
    for _ in range(10):
        nested = getattr(current, "reason", None)
        if not isinstance(nested, BaseException):
            nested = current.args[0] if current.args else None
        if not isinstance(nested, BaseException):
            break
        current = nested
    text = str(current) or type(current).__name__
    # urllib3 prefixes "HTTPConnection(host=..., port=...): "; the host is already in our message.
    if "): " in text and text.startswith(("HTTP", "<")):
        text = text.split("): ", 1)[1]
    return text if len(text) <= 200 else text[:197] + "..."


def tls_context(settings: ConnectionSettings) -> ssl.SSLContext:
    """The TLS context of the progress socket: verification and CA bundle as REST uses them.

    With verification off the CA bundle is not read at all (as ``requests`` ignores it then), so
    a stale ``ca_bundle_path`` cannot break a connection that does not verify.
    """
    if not settings.verify_tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=settings.ca_bundle_path)
