"""The bearer token's one owner (§A3, §B1.1): when to mint, which token is in use, sans I/O.

An :class:`AuthFlow` holds a token and its deadlines and answers the only questions about them:
must a token be minted now (none yet, refresh due with a third of the lifetime left, which
covers an expired one, or a fresh one asked for), is the scheduled refresh due (asked again
after a retry interval while none arrives), and does a 401 call for a new token. It reads no
clock (the time is passed in) and does no I/O: the REST client performs the mint request under
its lock, the follower's session schedules the socket's ``UPDATE_TOKEN``; both drive a flow the
way an httpx client drives its ``auth_flow``. Why there are two flows (the REST client's cache
and the socket's token in use), not one shared: ``docs/design.md#one-token-owner``.

The 401 rule: a request refused with 401 gets *one* freshly minted token and is sent once more;
a second 401 means the credentials themselves are refused (:data:`FRESH_TOKEN_RETRIES`).
"""

from __future__ import annotations

from airflow_insight.protocol.tokens import Token

#: How many times a request refused with 401 is sent again, each time with a fresh token.
FRESH_TOKEN_RETRIES = 1


def after_refusal(refusals: int) -> int | None:
    """A request sent after ``refusals`` refusals was refused (401) again: the refusal count to
    send it once more with, after minting a fresh token; None when the credentials are refused
    (the answer stands)."""
    refused = refusals + 1
    return refused if refused <= FRESH_TOKEN_RETRIES else None


class AuthFlow:
    """One token in use and its deadlines; see the module docstring."""

    __slots__ = ("_refresh_at", "token")

    def __init__(self) -> None:
        #: The token in use; ``repr`` of a :class:`Token` hides its value.
        self.token: Token | None = None
        # When the next refresh is asked for: the token's own due time, then retry intervals.
        self._refresh_at: float | None = None

    def __repr__(self) -> str:
        return f"AuthFlow(token={'yes' if self.token is not None else 'none'})"

    def mint_due(self, now: float, *, fresh: bool = False) -> bool:
        """True when a token must be minted before a request at ``now``: none yet, a third of
        its lifetime or less left (an expired token included), or ``fresh`` asked for."""
        return fresh or self.token is None or now >= self.token.refresh_due_at

    def minted(
        self,
        value: str,
        *,
        started_at: float,
        requested_seconds: float,
        server_seconds: float | None = None,
    ) -> Token:
        """A token was minted by a request sent at ``started_at``: use it from now on.

        Its lifetime is the one asked for, or the server's when that is shorter (a server caps
        it); ``server_seconds`` None means the server did not say."""
        lifetime = requested_seconds
        if server_seconds is not None and server_seconds < lifetime:
            lifetime = server_seconds
        token = Token(value, started_at + lifetime, lifetime)
        self.use(token)
        return token

    def use(self, token: Token) -> None:
        """Use ``token`` (minted elsewhere, or here) from now on and schedule its refresh."""
        self.token = token
        self._refresh_at = token.refresh_due_at

    def refused(self, token: Token) -> bool:
        """A request sent with ``token`` was answered 401: True when a new token must be
        minted, False when another one already replaced it (use :attr:`token`)."""
        return self.token is None or self.token is token

    def refresh_due(self, now: float) -> bool:
        """True when the scheduled refresh is due at ``now``; until a new token is in use, it
        is due again after the token's retry interval."""
        if self.token is None or self._refresh_at is None or now < self._refresh_at:
            return False
        self._refresh_at = now + self.token.retry_interval_seconds
        return True

    @property
    def refresh_at(self) -> float | None:
        """When the next refresh is asked for (None: no token yet)."""
        return self._refresh_at
