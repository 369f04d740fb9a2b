"""When to refresh a bearer token (§A3): pure arithmetic on the driver's clock.

The client refreshes when a third of the token's lifetime is left: 5 minutes before the end of the
default 15-minute token, one second before the end of a 3-second test token. Times are floats in
whatever clock the driver uses (``time.monotonic`` in practice); nothing here reads a clock.
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


@dataclasses.dataclass(frozen=True, slots=True)
class TokenTiming:
    """The lifetime of one bearer token, without the token itself (it never lives here)."""

    minted_at: float
    expires_at: float

    @classmethod
    def from_lifetime(cls, *, expires_at: float, lifetime_seconds: float) -> TokenTiming:
        """Build the timing from an expiry and a lifetime, as the REST client reports them."""
        return cls(minted_at=expires_at - lifetime_seconds, expires_at=expires_at)

    @property
    def lifetime_seconds(self) -> float:
        """How long the token is valid in total (never negative)."""
        return max(0.0, self.expires_at - self.minted_at)

    @property
    def refresh_due_at(self) -> float:
        """When a third of the lifetime is left."""
        return refresh_due_at(minted_at=self.minted_at, expires_at=self.expires_at)

    @property
    def retry_interval_seconds(self) -> float:
        """How long to wait before asking again for a refresh that did not arrive."""
        return max(MIN_RETRY_SECONDS, self.lifetime_seconds * RETRY_FRACTION)

    def refresh_due(self, now: float) -> bool:
        """Tell whether the token should be replaced at ``now``."""
        return now >= self.refresh_due_at

    def expired(self, now: float) -> bool:
        """Tell whether the token is no longer valid at ``now``."""
        return now >= self.expires_at
