"""How to reach one Insight server: a plain value, and how to read it from an Airflow connection.

Standard library only, so that everything below the hook can take it without importing Airflow:
:func:`settings_from_connection` reads any object with a connection's fields
(:class:`ConnectionLike`), so the hook passes it an Airflow ``Connection`` and a trigger the one it
got from ``await BaseHook.aget_connection(conn_id)``; it does no I/O.

Connection fields:

* ``host``: the full base URL, ``https://insight.example.com:8443/insight`` (scheme, port and a
  reverse proxy's path prefix). A host without a scheme is refused unless the ``scheme`` extra
  or the connection's ``schema`` field names one (``http`` or ``https``): see :func:`base_url`
  for why. That is how the URI form (``AIRFLOW_CONN_<ID>``) gives the scheme, since Airflow
  keeps only the host of ``insight://id:secret@host:port``:
  ``insight://id:secret@insight.example.com:8443/?scheme=https`` (the extra), or
  ``insight://id:secret@insight.example.com:8443/https`` (Airflow puts the URI path into
  ``schema``), or Airflow's own ``insight://https://id:secret@insight.example.com:8443``
  (the host keeps its scheme).
* ``login``: the REST API client id; ``password``: its secret.
* extras (JSON values, or strings as the URI form gives them): ``max_age_seconds`` (the token
  lifetime asked for; not named ``token_...`` because Airflow masks every extra whose name holds
  "token"), ``verify_tls`` (default true), ``ca_bundle_path``, ``connect_timeout_seconds``,
  ``read_timeout_seconds``, ``unreachable_limit_seconds``, ``accepted_model_statuses`` (a list or
  a comma-separated string), ``ui_base_url``, ``ui_job_url_template``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit, urlunsplit

from airflow_insight.exceptions import ConfigurationError
from airflow_insight.protocol.statuses import DEFAULT_ACCEPTED_MODEL_STATUSES
from airflow_insight.protocol.wire import COMPUTE_JOB_MESSAGES_PATH

log = logging.getLogger(__name__)

#: The token lifetime asked for by default: the server's default cap (§B2.3).
DEFAULT_TOKEN_MAX_AGE_SECONDS = 900
#: How long a followed job may go without any answer from the server (socket or REST) before it
#: fails with a retryable error: long enough for a server restart, short enough that a
#: dead server does not hold a worker slot for hours.
DEFAULT_UNREACHABLE_LIMIT_SECONDS = 600.0

_SCHEMES = ("http", "https")


#: The extra that gives the scheme of a host written without one (the URI form's ``?scheme=``).
SCHEME_EXTRA = "scheme"


def _scheme_missing(url: str) -> ConfigurationError:
    return ConfigurationError(
        f"the Insight server URL {url!r} has no scheme: add http:// or https:// in front of it"
        f" (e.g. https://{url} for a TLS server, http://{url} for a plain one such as the"
        " emulator); in a connection URI add ?scheme=https (or http), e.g."
        f" insight://client-id:secret@{url}/?scheme=https"
    )


@dataclasses.dataclass(frozen=True)
class ConnectionSettings:
    """Where an Insight server is and how to authenticate with it.

    The secret is kept out of ``repr`` so the value can be logged safely.
    """

    base_url: str
    client_id: str
    client_secret: str = dataclasses.field(repr=False)
    token_max_age_seconds: int = DEFAULT_TOKEN_MAX_AGE_SECONDS
    verify_tls: bool = True
    ca_bundle_path: str | None = None
    connect_timeout_seconds: float = 10.0
    read_timeout_seconds: float = 60.0
    #: A followed job fails (retryably) after this long without any answer from the server.
    unreachable_limit_seconds: float = DEFAULT_UNREACHABLE_LIMIT_SECONDS
    accepted_model_statuses: frozenset[str] = DEFAULT_ACCEPTED_MODEL_STATUSES
    #: Base URL of the Insight web UI for extra links; defaults to ``base_url``.
    ui_base_url: str | None = None
    #: Overrides the job link's shape; see :func:`airflow_insight.links.job_ui_url`.
    ui_job_url_template: str | None = None
    #: The Airflow connection these settings were read from, for messages (None: made by hand).
    connection_id: str | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        if "://" not in self.base_url:
            raise _scheme_missing(self.base_url)
        parts = urlsplit(self.base_url)
        if parts.scheme not in _SCHEMES or not parts.netloc:
            raise ConfigurationError(
                f"Insight server URL {self.base_url!r} must look like https://host[:port][/prefix]"
            )
        # Credentials belong in login/password (kept secret), not in a URL that gets logged.
        if parts.username is not None or parts.password is not None:
            raise ConfigurationError(
                "the Insight server URL must not hold a user name or password: put the client id"
                " in the connection's login and the secret in its password"
            )
        if parts.query or parts.fragment:
            raise ConfigurationError(
                "the Insight server URL must not have a query or fragment; give scheme, host,"
                " port and path prefix only"
            )
        if not self.client_id or not self.client_secret:
            raise ConfigurationError("the Insight connection needs a client id and a secret")
        if self.token_max_age_seconds <= 0:
            raise ConfigurationError("token_max_age_seconds must be positive")
        if not self.unreachable_limit_seconds > 0:
            raise ConfigurationError("unreachable_limit_seconds must be positive")
        # A trailing slash makes urljoin keep the path prefix of a reverse proxy (§A1).
        if not self.base_url.endswith("/"):
            object.__setattr__(self, "base_url", self.base_url + "/")

    @property
    def server_name(self) -> str:
        """The server as messages name it: its URL, and the Airflow connection when known."""
        url = self.base_url.rstrip("/")
        if self.connection_id is None:
            return url
        return f"{url} (Airflow connection {self.connection_id!r})"

    def url(self, path_or_url: str) -> str:
        """Resolve an API path or a server-relative URL from a message against the base URL.

        Server-relative URLs (``/api/...``) keep the base URL's path prefix (§A1, §B9 #23).
        """
        if urlsplit(path_or_url).scheme:
            return path_or_url
        return urljoin(self.base_url, path_or_url.lstrip("/"))

    @property
    def websocket_url(self) -> str:
        """The progress WebSocket URL: ``ws`` for ``http`` bases, ``wss`` for ``https``."""
        parts = urlsplit(self.url(COMPUTE_JOB_MESSAGES_PATH))
        scheme = "wss" if parts.scheme == "https" else "ws"
        return urlunsplit((scheme, parts.netloc, parts.path, parts.query, ""))


# ------------------------------------------------------------------ reading an Airflow connection


class ConnectionLike(Protocol):
    """The fields of an Airflow ``Connection`` that :func:`settings_from_connection` reads."""

    conn_id: str
    host: str | None
    schema: str | None
    login: str | None
    password: str | None
    port: int | None

    @property
    def extra_dejson(self) -> dict[str, Any]:
        """The extras as a dict."""


def settings_from_connection(conn: ConnectionLike) -> ConnectionSettings:
    """Build :class:`ConnectionSettings` from an Airflow connection; no I/O.

    Raises :class:`ConfigurationError` naming the connection and the field at fault.
    """
    try:
        extras = conn.extra_dejson
        return _settings(conn, extras if isinstance(extras, Mapping) else {})
    except ConfigurationError as exc:
        raise ConfigurationError(f"Airflow connection {conn.conn_id!r}: {exc}") from exc


def _settings(conn: ConnectionLike, extras: Mapping[str, Any]) -> ConnectionSettings:
    unknown = sorted(set(extras) - KNOWN_EXTRAS)
    if unknown:
        log.warning("Ignoring unknown Insight connection extras %s (check the spelling)", unknown)
    options: dict[str, Any] = {}
    for name, (field, parse) in _EXTRAS.items():
        value = extras.get(name)
        if value is not None and not (isinstance(value, str) and not value.strip()):
            options[field] = parse(name, value)
    scheme = extras.get(SCHEME_EXTRA)
    if scheme is not None and not isinstance(scheme, str):
        raise ConfigurationError(f"extra {SCHEME_EXTRA!r} must be http or https, not {scheme!r}")
    return ConnectionSettings(
        base_url=base_url(conn.host, conn.schema, conn.port, scheme),
        client_id=(conn.login or "").strip(),
        client_secret=conn.password or "",
        connection_id=conn.conn_id,
        **options,
    )


def base_url(
    host: str | None, schema: str | None, port: int | None, scheme: str | None = None
) -> str:
    """The server base URL from the connection's ``host``, ``schema`` and ``port`` fields and
    its ``scheme`` extra.

    A host without a scheme (``127.0.0.1:8765``, ``insight.example.com``) takes it from the
    ``scheme`` extra (``?scheme=https`` in the URI form) or from ``schema`` (the URI form's
    path: ``.../https``); the two must agree when both are given. A host with a scheme ignores
    neither silently: a different ``scheme`` extra is refused. Without any of them the host is
    refused. We refuse rather than guess: guessing ``https`` (as 0.1.0 did) sends a
    TLS handshake to a plain-HTTP server such as the emulator, and the user then gets advice
    about certificates and ``verify_tls`` for what is a typo; guessing ``http`` would send the
    client secret unencrypted to a server that expects TLS. Either guess is wrong for someone,
    and the fix (type the scheme) takes a second once the message says so.
    """
    host = (host or "").strip()
    if not host:
        raise ConfigurationError(
            "host is empty; set it to the Insight server URL, e.g. https://insight.example.com"
        )
    extra_scheme = (scheme or "").strip().lower()
    if extra_scheme not in ("", *_SCHEMES):
        raise ConfigurationError(f"extra {SCHEME_EXTRA!r} must be http or https, not {scheme!r}")
    if "://" in host:
        given = urlsplit(host).scheme.lower()
        if extra_scheme and extra_scheme != given:
            raise ConfigurationError(
                f"host {host!r} says {given} but the extra {SCHEME_EXTRA!r} says {extra_scheme}"
            )
        _refuse_path_in_schema(schema)
        return _with_port(host, port)
    scheme_field = (schema or "").strip().lower()
    if scheme_field not in ("", *_SCHEMES):
        raise ConfigurationError(
            f"schema {schema!r} must be http, https or empty; put a path prefix into host as a"
            " full URL, e.g. https://server/insight"
        )
    if scheme_field and extra_scheme and scheme_field != extra_scheme:
        raise ConfigurationError(
            f"schema {scheme_field!r} and the extra {SCHEME_EXTRA!r} {extra_scheme!r} disagree"
        )
    netloc, slash, path = host.partition("/")
    if port:
        netloc = f"{netloc}:{port}"
    chosen = scheme_field or extra_scheme
    if not chosen:
        raise _scheme_missing(f"{netloc}{slash}{path}".rstrip("/"))
    return f"{chosen}://{netloc}{slash}{path}".rstrip("/")


def _refuse_path_in_schema(schema: str | None) -> None:
    """A ``schema`` beside a full URL in host is the URI form's path
    (``insight://https://id:secret@host/insight``): refused rather than dropped, since it
    reads like a path prefix that would silently be lost."""
    text = (schema or "").strip()
    if text and text.lower() not in _SCHEMES:
        raise ConfigurationError(
            f"schema {schema!r} (the path of a connection URI) cannot be a path prefix; write the"
            " connection in JSON with the prefix in host, e.g. https://server/insight"
        )


def _with_port(url: str, port: int | None) -> str:
    """``url`` with the connection's ``port`` field applied; refuses two different ports."""
    if port and urlsplit(url).port is None:
        parts = urlsplit(url)
        url = parts._replace(netloc=f"{parts.netloc}:{port}").geturl()
    elif port and urlsplit(url).port not in (None, port):
        raise ConfigurationError(f"host {url!r} and port {port} name different ports")
    return url.rstrip("/")


_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def _boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigurationError(f"extra {name!r} must be true or false, not {value!r}")


def _positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ConfigurationError(f"extra {name!r} must be a number, not {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"extra {name!r} must be a number, not {value!r}") from None
    if not number > 0 or number == float("inf"):
        raise ConfigurationError(f"extra {name!r} must be a positive number, not {value!r}")
    return number


def _positive_int(name: str, value: Any) -> int:
    number = _positive_float(name, value)
    if number != int(number):
        raise ConfigurationError(f"extra {name!r} must be a whole number of seconds, not {value!r}")
    return int(number)


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"extra {name!r} must be a string, not {value!r}")
    return value.strip()


def _url(name: str, value: Any) -> str:
    text = _text(name, value)
    parts = urlsplit(text)
    if parts.scheme not in _SCHEMES or not parts.netloc:
        raise ConfigurationError(f"extra {name!r} must be an http(s) URL, not {value!r}")
    return text


def _model_statuses(name: str, value: Any) -> frozenset[str]:
    items: list[Any]
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        items = [None]
    if not all(isinstance(item, str) for item in items):
        raise ConfigurationError(
            f"extra {name!r} must be a list of strings or a comma-separated string, not {value!r}"
        )
    statuses = frozenset(item.strip() for item in items if item.strip())
    if not statuses:
        raise ConfigurationError(f"extra {name!r} is empty; leave it out to accept only OK")
    return statuses


#: Each extra: the ConnectionSettings field it sets and how it is read; a missing or empty one
#: keeps the ConnectionSettings default.
_EXTRAS: dict[str, tuple[str, Callable[[str, Any], Any]]] = {
    "max_age_seconds": ("token_max_age_seconds", _positive_int),
    "verify_tls": ("verify_tls", _boolean),
    "ca_bundle_path": ("ca_bundle_path", _text),
    "connect_timeout_seconds": ("connect_timeout_seconds", _positive_float),
    "read_timeout_seconds": ("read_timeout_seconds", _positive_float),
    "unreachable_limit_seconds": ("unreachable_limit_seconds", _positive_float),
    "accepted_model_statuses": ("accepted_model_statuses", _model_statuses),
    "ui_base_url": ("ui_base_url", _url),
    "ui_job_url_template": ("ui_job_url_template", _text),
}
#: The extra names the connection understands; any other is reported as a likely typo.
KNOWN_EXTRAS = frozenset({*_EXTRAS, SCHEME_EXTRA})
