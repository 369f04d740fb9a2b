"""How to reach one Insight server: a plain value, built by the hook from an Airflow connection.

Standard library only, so that everything below the hook can take it without importing Airflow.
"""

from __future__ import annotations

import dataclasses
from urllib.parse import urljoin, urlsplit, urlunsplit

from airflow_insight.exceptions import ConfigurationError
from airflow_insight.protocol.statuses import DEFAULT_ACCEPTED_MODEL_STATUSES
from airflow_insight.protocol.wire import COMPUTE_JOB_MESSAGES_PATH

#: The token lifetime asked for by default: the server's default cap (§B2.3).
DEFAULT_TOKEN_MAX_AGE_SECONDS = 900


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
    accepted_model_statuses: frozenset[str] = DEFAULT_ACCEPTED_MODEL_STATUSES
    #: Base URL of the Insight web UI for extra links; defaults to ``base_url``.
    ui_base_url: str | None = None
    #: Overrides the job link's shape; see :func:`airflow_insight.links.job_ui_url`.
    ui_job_url_template: str | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
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
        # A trailing slash makes urljoin keep the path prefix of a reverse proxy (§A1).
        if not self.base_url.endswith("/"):
            object.__setattr__(self, "base_url", self.base_url + "/")

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
