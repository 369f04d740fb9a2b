"""Below HTTP: ``requests`` exceptions mapped once into :mod:`airflow_insight.exceptions`, and
the TLS context both WebSocket drivers use.

Every message names the server (without user info or query) and says what to check; none carries
a header, so no token or secret can leak through them.
"""

from __future__ import annotations

import socket
import ssl
from typing import NoReturn
from urllib.parse import urlsplit

import requests

from airflow_insight.exceptions import CertificateRejected, InsightTimeout, TransportError
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
        rejected = certificate_rejected(where, exc)
        if rejected is not None:
            return NetworkFailure(rejected, exc, retryable=False)
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
    if isinstance(exc, requests.exceptions.ProxyError):
        error = TransportError(
            f"the HTTP proxy refused or failed the request to the Insight server at {where}"
            f" ({reason}); check HTTPS_PROXY and NO_PROXY where Airflow runs"
        )
        return NetworkFailure(error, exc, retryable=True)
    if isinstance(
        exc, requests.exceptions.ConnectionError | requests.exceptions.ChunkedEncodingError
    ):
        error = TransportError(_unreachable(where, exc, reason))
        return NetworkFailure(error, exc, retryable=True)
    error = TransportError(f"{method} {display_url(url)} failed ({reason})")
    return NetworkFailure(error, exc, retryable=False)


def _unreachable(where: str, exc: BaseException, reason: str) -> str:
    """The message for a connection that failed, naming a cause a user can act on."""
    causes = _causes(exc)
    # urllib3 2 raises NameResolutionError around socket.gaierror; older stacks only the latter.
    if any(
        isinstance(cause, socket.gaierror) or type(cause).__name__ == "NameResolutionError"
        for cause in causes
    ):
        return (
            f"could not talk to the Insight server at {where}: the host name does not resolve"
            " (DNS); check the host of the connection"
        )
    if any(isinstance(cause, ConnectionRefusedError) for cause in causes):
        reason = "connection refused"
    return (
        f"could not talk to the Insight server at {where} ({reason}); check the host and port"
        " of the connection and that the server is running"
    )


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


#: OpenSSL's verify codes (``X509_V_ERR_*``) of a server certificate whose dates do not cover now.
_EXPIRED_CODES = frozenset({9, 10})  # not yet valid, expired
#: The certificate names other hosts (by name or by IP address).
_HOST_MISMATCH_CODES = frozenset({62, 64})


def certificate_rejected(where: str, exc: BaseException) -> CertificateRejected | None:
    """The error for a server certificate that failed verification, with what to do about it;
    None when ``exc`` holds no certificate verification failure (another TLS or network error).

    ``where`` is the server as messages show it. Each cause gets its own advice: a private CA
    needs ``ca_bundle_path``, an expired certificate needs renewing (or this machine's clock
    fixing), a host-name mismatch needs the host the certificate names.
    """
    failure = _verification_failure(exc)
    if failure is None:
        return None
    code = failure.verify_code
    detail = failure.verify_message or str(failure)
    prefix = f"TLS with the Insight server at {where} failed: "
    if code in _EXPIRED_CODES:
        advice = (
            f"its certificate is outside its validity dates ({detail}); renew the server's"
            " certificate, or correct this machine's clock if it is wrong (ca_bundle_path does"
            " not help here)"
        )
    elif code in _HOST_MISMATCH_CODES:
        host = urlsplit(where).hostname or where
        advice = (
            f"its certificate is not issued for {host} ({detail}); set the connection's host to"
            f" a name the certificate lists, or have the certificate issued for {host}"
        )
    else:
        advice = (
            f"its certificate is not signed by a CA this machine trusts ({detail}); set"
            " ca_bundle_path in the connection extras to a PEM bundle holding the CA that"
            " signed it (on every worker and triggerer), or (for a test server only)"
            " verify_tls=false"
        )
    return CertificateRejected(prefix + advice)


def _verification_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification error inside ``exc``'s chain, or None."""
    return next(
        (cause for cause in _causes(exc) if isinstance(cause, ssl.SSLCertVerificationError)),
        None,
    )


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception inside it, without cycles: ``requests`` and ``urllib3`` wrap
    the underlying error in ``reason``, ``args``, causes and contexts."""
    seen: list[BaseException] = []
    pending: list[object] = [exc]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or any(current is known for known in seen):
            continue
        seen.append(current)
        pending.extend((getattr(current, "reason", None), current.__cause__, current.__context__))
        pending.extend(current.args)
    return seen
