"""The airflow-insight exception tree; standard library only.

::

    InsightError
    ├── ConfigurationError        the connection or operator arguments are unusable
    ├── AuthenticationError       credentials or a token were refused (401 after a fresh token)
    ├── PermissionDenied          the server refused the operation (403)
    ├── TransportError            the network failed us
    │   ├── InsightTimeout        no answer within the configured time
    │   ├── ConnectionLost        an open socket or connection went away
    │   ├── CertificateRejected   the server's TLS certificate is not trusted as configured
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
:meth:`InsightError.to_dict` and :meth:`InsightError.from_dict` turn any of them into JSON-safe
data and back with its class, message, ``permanent`` flag and fields (the trigger's event payload
carries errors that way).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from typing import Any

#: Field values an error may carry through JSON (every field of the tree is one of these).
_JSON_SCALARS = (str, int, float, bool, type(None))


class InsightError(Exception):
    """Base of every error raised by airflow-insight."""

    #: True when retrying the same operation later cannot help (Airflow should not retry).
    permanent: bool = False

    # ----------------------------------------------------------------------------- serialisation
    # The trigger's event carries errors through JSON: each error says how to rebuild itself.

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The keyword-only ``__init__`` parameters: the fields :meth:`to_dict` carries.

        Every subclass stores each such parameter in the attribute of the same name (a test
        walks the whole tree to hold every class, including future ones, to that).
        """
        parameters = inspect.signature(cls.__init__).parameters.values()
        return tuple(p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe data that :meth:`from_dict` turns back into an equal error."""
        fields = {name: getattr(self, name) for name in self.field_names()}
        for name, value in fields.items():
            if not isinstance(value, _JSON_SCALARS):
                raise TypeError(f"{type(self).__name__}.{name} is not JSON-safe: {value!r}")
        return {
            "type": type(self).__name__,
            "message": str(self),
            "permanent": bool(self.permanent),
            "fields": fields,
        }

    @staticmethod
    def from_dict(data: Mapping[str, Any]) -> InsightError:
        """The error :meth:`to_dict` described: same class, message, flag and fields.

        An unknown class name (an event written by a newer version) or fields that do not fit
        the class give a plain :class:`InsightError` whose message names the original class;
        ``permanent`` is kept as sent either way, so Airflow retries (or not) as it would have.
        """
        name = str(data.get("type", "InsightError"))
        message = str(data.get("message", ""))
        raw_fields = data.get("fields")
        fields = dict(raw_fields) if isinstance(raw_fields, Mapping) else {}
        kind = error_classes().get(name)
        error: InsightError
        try:
            if kind is None:
                raise TypeError(name)
            error = kind(message, **fields)
        except TypeError:
            error = InsightError(f"{name}: {message}")
        permanent = data.get("permanent")
        if isinstance(permanent, bool) and permanent != error.permanent:
            error.permanent = permanent
        return error


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


class CertificateRejected(TransportError):
    """The server's TLS certificate failed verification: unknown CA, expired, wrong host name.

    Permanent: only a change of the connection, the certificate or the clock fixes it.
    """

    permanent = True


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


def _walk(cls: type[InsightError]) -> Iterator[type[InsightError]]:
    yield cls
    for sub in cls.__subclasses__():
        yield from _walk(sub)


def error_classes() -> dict[str, type[InsightError]]:
    """Every class of the tree by name (walked at each call: subclasses may be added later)."""
    return {cls.__name__: cls for cls in _walk(InsightError)}
