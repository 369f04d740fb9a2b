"""The connection half of the core: the socket's states, its backoff and the token, sans I/O.

A :class:`Session` knows whether a progress socket is open, being opened, or waited for, how long
to back off before the next attempt, and which token is in use. Its states and the inputs that
move between them are one table, :data:`TRANSITIONS`; an input that the table does not allow in
the current state raises :class:`~airflow_insight.exceptions.LocalProtocolError` (a driver bug:
say, reporting a second socket open while one is), instead of being silently ignored.

::

    state         WANTED        DUE          OPENED   FAILED        LOST
    IDLE          BACKING_OFF   -            -        -             IDLE
    BACKING_OFF   BACKING_OFF   CONNECTING   OPEN     BACKING_OFF   BACKING_OFF
    CONNECTING    CONNECTING    -            OPEN     BACKING_OFF   BACKING_OFF
    OPEN          OPEN          -            -        -             BACKING_OFF

``OPENED`` and ``FAILED`` while backing off are late answers to a connect attempt that a lost
socket already counted as failed; ``LOST`` where no socket is open changes nothing (a second
report of the same loss). A socket opens only when the core asked for one, so never from ``IDLE``.

Backoff: ``initial * multiplier ** failures`` capped at ``max``, times a jitter factor in
``[1 - jitter_fraction, 1 + jitter_fraction]`` drawn from ``jitter_source``; only a socket that
proved itself starts it over (``docs/design.md#the-follower``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Protocol

from airflow_insight.exceptions import LocalProtocolError
from airflow_insight.protocol.auth import AuthFlow
from airflow_insight.protocol.tokens import Token

__all__ = ["TRANSITIONS", "Session", "SessionInput", "SessionState"]


class SessionState(enum.Enum):
    """Where the progress socket is."""

    #: No socket and none wanted yet (nothing followed).
    IDLE = "idle"
    #: No socket; the next attempt is due at ``reconnect_at``.
    BACKING_OFF = "backing_off"
    #: The core asked for a socket (or its token) and waits for the answer.
    CONNECTING = "connecting"
    OPEN = "open"


class SessionInput(enum.Enum):
    """What can happen to the session."""

    WANTED = "wanted"  # a job is followed
    DUE = "due"  # the reconnect time came
    OPENED = "opened"
    FAILED = "failed"  # a connect attempt failed
    LOST = "lost"  # the open socket closed or broke


_S, _I = SessionState, SessionInput

#: (state, input) -> next state; anything missing is a driver bug.
TRANSITIONS: dict[tuple[SessionState, SessionInput], SessionState] = {
    (_S.IDLE, _I.WANTED): _S.BACKING_OFF,
    (_S.IDLE, _I.LOST): _S.IDLE,
    (_S.BACKING_OFF, _I.WANTED): _S.BACKING_OFF,
    (_S.BACKING_OFF, _I.DUE): _S.CONNECTING,
    (_S.BACKING_OFF, _I.OPENED): _S.OPEN,
    (_S.BACKING_OFF, _I.FAILED): _S.BACKING_OFF,
    (_S.BACKING_OFF, _I.LOST): _S.BACKING_OFF,
    (_S.CONNECTING, _I.WANTED): _S.CONNECTING,
    (_S.CONNECTING, _I.OPENED): _S.OPEN,
    (_S.CONNECTING, _I.FAILED): _S.BACKING_OFF,
    (_S.CONNECTING, _I.LOST): _S.BACKING_OFF,
    (_S.OPEN, _I.WANTED): _S.OPEN,
    (_S.OPEN, _I.LOST): _S.BACKING_OFF,
}


class BackoffConfig(Protocol):
    """The :class:`~airflow_insight.protocol.follower.FollowerConfig` fields used here."""

    @property
    def reconnect_initial_delay_seconds(self) -> float: ...
    @property
    def reconnect_max_delay_seconds(self) -> float: ...
    @property
    def reconnect_multiplier(self) -> float: ...
    @property
    def jitter_fraction(self) -> float: ...
    @property
    def stable_connection_seconds(self) -> float: ...


class Session:
    """The socket's state, backoff and token; see the module docstring."""

    def __init__(
        self, config: BackoffConfig, jitter_source: Callable[[], float] | None = None
    ) -> None:
        self.config = config
        self._jitter_source = jitter_source
        self.state = SessionState.IDLE
        self.connection_id: str | None = None
        #: Failed attempts since the last socket that proved itself.
        self.failures = 0
        self.reconnect_at: float | None = None
        self.opened_at = 0.0
        # True once the open socket delivered a message other than ERROR (see message_received).
        self._proven = False
        #: The socket's token and its refresh schedule.
        self.auth = AuthFlow()

    def __repr__(self) -> str:
        # The token's own repr hides its value; say only whether there is one.
        token = "yes" if self.token is not None else "none"
        return f"Session(state={self.state.value}, failures={self.failures}, token={token})"

    @property
    def token(self) -> Token | None:
        """The token in use (the REST client may hold the same object)."""
        return self.auth.token

    @property
    def is_open(self) -> bool:
        """True while a socket is open."""
        return self.state is SessionState.OPEN

    def move(self, event: SessionInput) -> SessionState:
        """Apply one input by the table; the previous state is returned."""
        previous = self.state
        try:
            self.state = TRANSITIONS[(previous, event)]
        except KeyError:
            raise LocalProtocolError(
                f"the progress socket cannot be {event.value} while {previous.value}"
            ) from None
        return previous

    # ----------------------------------------------------------------------------- inputs

    def wanted(self, now: float) -> None:
        """A job is followed: make sure a socket will be asked for."""
        if self.move(SessionInput.WANTED) is SessionState.IDLE:
            self.reconnect_at = now

    def due(self, now: float) -> bool:
        """True (and ``CONNECTING``) when the reconnect time has come at ``now``."""
        if self.state is not SessionState.BACKING_OFF:
            return False
        if self.reconnect_at is None or now < self.reconnect_at:
            return False
        self.move(SessionInput.DUE)
        self.reconnect_at = None
        return True

    def opened(self, connection_id: str | None, now: float) -> None:
        """A socket is open; the failure count stays until it proves itself."""
        self.move(SessionInput.OPENED)
        self.connection_id = connection_id
        self.opened_at = now
        self._proven = False
        self.reconnect_at = None

    def message_received(self, *, error: bool) -> None:
        """The socket delivered a message; any but ``ERROR`` proves it (a server refusing us
        typically sends one ``ERROR`` and closes)."""
        if self.is_open and not error:
            self._proven = True

    def failed(self, now: float) -> None:
        """A connect attempt failed: back off further."""
        self.move(SessionInput.FAILED)
        self.connection_id = None
        self.failures += 1
        self.reconnect_at = now + self.backoff(self.failures)

    def lost(self, now: float) -> bool:
        """The open socket went away (or a connect attempt did): schedule the next one.

        Returns True when an open socket was lost (False: nothing was open).
        """
        previous = self.state
        if previous is SessionState.CONNECTING:
            # Lost while a connect attempt is under way: that attempt failed.
            self.failed(now)
            return False
        self.move(SessionInput.LOST)
        if previous is not SessionState.OPEN:
            return False
        self.connection_id = None
        stable = now - self.opened_at >= self.config.stable_connection_seconds
        self.failures = 0 if self._proven or stable else self.failures + 1
        self.reconnect_at = now + self.backoff(self.failures)
        return True

    def token_in_use(self, token: Token) -> None:
        """Use ``token`` from now on and schedule its refresh."""
        self.auth.use(token)

    def token_refresh_due(self, now: float) -> bool:
        """True when the token needs replacing at ``now``; asks again after a retry interval."""
        return self.auth.refresh_due(now)

    # ----------------------------------------------------------------------------- timing

    def backoff(self, failures: int) -> float:
        """The delay after ``failures`` failures, with jitter."""
        config = self.config
        delay = min(
            config.reconnect_max_delay_seconds,
            config.reconnect_initial_delay_seconds * config.reconnect_multiplier**failures,
        )
        if self._jitter_source is None or config.jitter_fraction == 0:
            return delay
        draw = min(1.0, max(0.0, self._jitter_source()))
        return delay * (1.0 + config.jitter_fraction * (2.0 * draw - 1.0))

    def deadlines(self) -> list[float]:
        """The session's own next deadlines (token refresh, reconnect)."""
        found = [] if self.auth.refresh_at is None else [self.auth.refresh_at]
        if self.reconnect_at is not None and self.state is SessionState.BACKING_OFF:
            found.append(self.reconnect_at)
        return found
