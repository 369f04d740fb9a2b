"""The bearer token (§A3): its value and timing in one type, sans I/O.

The client refreshes when a third of the token's lifetime is left: 5 minutes before the end of the
default 15-minute token, one second before the end of a 3-second test token. Times are floats in
whatever clock the driver uses (``time.monotonic`` in practice); nothing here reads a clock. When
to mint and which token is in use is decided by :class:`~.auth.AuthFlow`; a :class:`Token` is
the same object for the REST client and the socket, never a copy.
"""

from __future__ import annotations

import dataclasses

#: Refresh once this fraction of the lifetime is all that is left (§A3, §B9 #3: "≤ ⅔").
REFRESH_WHEN_LEFT = 1.0 / 3.0
#: After a refresh was asked for and nothing came back, ask again this often (fraction of lifetime)
#: so a failed mint is retried a few times before the token runs out.
RETRY_FRACTION = 1.0 / 12.0
#: Never retry more often than this, whatever the lifetime (keeps a broken clock from spinning).
MIN_RETRY_SECONDS = 0.01


def refresh_due_at(*, minted_at: float, expires_at: float) -> float:
    """The moment a token minted at ``minted_at`` and expiring at ``expires_at`` needs replacing."""
    lifetime = max(0.0, expires_at - minted_at)
    return expires_at - lifetime * REFRESH_WHEN_LEFT


@dataclasses.dataclass(frozen=True)
class Token:
    """A bearer token and when it runs out, in the minting clock; ``repr`` hides the value."""

    value: str = dataclasses.field(repr=False)
    #: Clock reading at which the server stops accepting the token.
    expires_at: float
    #: How long the token was valid for when it was minted.
    lifetime_seconds: float

    @property
    def minted_at(self) -> float:
        """Clock reading when the token was minted."""
        return self.expires_at - self.lifetime_seconds

    @property
    def refresh_due_at(self) -> float:
        """When a third of the lifetime is left."""
        return refresh_due_at(minted_at=self.minted_at, expires_at=self.expires_at)

    @property
    def retry_interval_seconds(self) -> float:
        """How long to wait before asking again for a refresh that did not arrive."""
        return max(MIN_RETRY_SECONDS, max(0.0, self.lifetime_seconds) * RETRY_FRACTION)
