"""The airflow-insight exception tree; standard library only.

::

    InsightError
    ├── ConfigurationError        the connection or operator arguments are unusable
    ├── AuthenticationError       credentials or a token were refused (401 after a fresh token)
    ├── PermissionDenied          the server refused the operation (403)
    ├── TransportError            the network failed us
    │   ├── InsightTimeout        no answer within the configured time
    │   ├── ConnectionLost        an open socket or connection went away
    │   └── ServerUnreachable     neither socket nor REST answered for the configured limit
    ├── ServerError               the server answered with an error we may retry (429, 5xx)
    ├── ProtocolError             a message broke the protocol
    │   ├── LocalProtocolError    we were about to send something invalid (a bug here)
    │   └── RemoteProtocolError   the peer sent something we cannot understand
    ├── SubmitRejected            the server refused to create the job (409, 422, ...)
    ├── JobNotFound               the job does not exist (404 / COMPUTE_JOB_NOT_FOUND)
    └── JobFailed                 the job ended in a state other than success
        └── JobCancelled          the job was cancelled or deleted

Exceptions are plain data: they never do I/O, and their messages never carry secrets or tokens.
"""

from __future__ import annotations


class InsightError(Exception):
    """Base of every error raised by airflow-insight."""

    #: True when retrying the same operation later cannot help (Airflow should not retry).
    permanent: bool = False


class ConfigurationError(InsightError):
    """The connection or the operator arguments cannot work as given."""

    permanent = True


class AuthenticationError(InsightError):
    """The server refused the client id and secret, or a freshly minted token."""

    permanent = True


class PermissionDenied(InsightError):
    """The server answered 403: the user may not do this."""

    permanent = True


class TransportError(InsightError):
    """The network failed: connection refused or reset, TLS failure, DNS failure."""


class InsightTimeout(TransportError):
    """The server did not answer within the configured time."""


class ConnectionLost(TransportError):
    """An open connection or WebSocket was closed or broke."""


class ServerUnreachable(TransportError):
    """Nothing from the server (no socket message, no REST answer) for the configured limit.

    Retryable: the next try of the task re-attaches to the job once the server is back.
    """

    permanent = False


class ServerError(InsightError):
    """The server answered with a retryable error status (429 or 5xx)."""

    def __init__(self, message: str, *, status_code: int, retry_after_seconds: float | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.retry_after_seconds = retry_after_seconds


class ProtocolError(InsightError):
    """A message broke the Insight protocol."""


class LocalProtocolError(ProtocolError):
    """This side was about to send something the protocol does not allow (a bug here)."""

    permanent = True


class RemoteProtocolError(ProtocolError):
    """The peer sent something that cannot be understood."""


class SubmitRejected(InsightError):
    """The server refused to create the compute job (duplicate id, validation failure)."""

    permanent = True

    def __init__(self, message: str, *, status_code: int | None = None):
        super().__init__(message)
        self.status_code = status_code


class JobNotFound(InsightError):
    """The compute job is not (or no longer) known to the server."""

    def __init__(self, message: str, *, compute_job_id: str):
        super().__init__(message)
        self.compute_job_id = compute_job_id


class JobFailed(InsightError):
    """The compute job reached a terminal state that is not success."""

    def __init__(
        self,
        message: str,
        *,
        compute_job_id: str,
        status: str,
        model_status: str | None,
    ):
        super().__init__(message)
        self.compute_job_id = compute_job_id
        self.status = status
        self.model_status = model_status


class JobCancelled(JobFailed):
    """The compute job was cancelled or deleted before it finished."""
