"""Bearer tokens: minting, checking and expiring (§A3, §B2)."""

from __future__ import annotations

import dataclasses
import datetime
import secrets
import time
import uuid


@dataclasses.dataclass
class Token:
    """What the emulator knows about one issued token (never logged or recorded)."""

    client_id: str
    expires_at: float  # time.monotonic() clock
    expires_at_wall: datetime.datetime
    user_id: str


class TokenStore:
    """Issued tokens; a token is valid while it is known and not expired."""

    def __init__(self, credentials: dict[str, str], cap_seconds: float) -> None:
        self._credentials = credentials
        self._cap_seconds = cap_seconds
        self._tokens: dict[str, Token] = {}
        # One stable user per client id, so current-user answers stay the same across tokens.
        self._users = {
            client: str(uuid.uuid5(uuid.NAMESPACE_URL, client)) for client in credentials
        }

    def credentials_match(self, client_id: str, secret: str) -> bool:
        """Tell whether the pair is configured, comparing secrets in constant time."""
        expected = self._credentials.get(client_id)
        return expected is not None and secrets.compare_digest(expected, secret)

    def mint(self, client_id: str, max_age_seconds: float) -> tuple[str, Token]:
        """Issue a token living min(max_age, cap) seconds."""
        lifetime = min(max_age_seconds, self._cap_seconds)
        text = secrets.token_urlsafe(32)
        wall = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=lifetime)
        token = Token(client_id, time.monotonic() + lifetime, wall, self._users[client_id])
        self._tokens[text] = token
        self._forget_expired()
        return text, token

    def check(self, text: str | None) -> Token | None:
        """The token's record when ``text`` is a known, unexpired token, else None."""
        if not text:
            return None
        token = self._tokens.get(text)
        if token is None or token.expires_at <= time.monotonic():
            return None
        return token

    def expire_all(self) -> None:
        """Make every issued token expired now (the expire-tokens fault)."""
        now = time.monotonic()
        for token in self._tokens.values():
            token.expires_at = min(token.expires_at, now)

    def _forget_expired(self) -> None:
        # Keep the table small under load: drop tokens that expired more than a minute ago.
        if len(self._tokens) < 1024:
            return
        horizon = time.monotonic() - 60.0
        for text in [t for t, token in self._tokens.items() if token.expires_at < horizon]:
            del self._tokens[text]


def bearer_from_header(value: str | None) -> str | None:
    """The token text of an ``Authorization: Bearer ...`` header, or None."""
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def iso_utc(moment: datetime.datetime) -> str:
    """RFC 3339 UTC with millisecond precision, as Insight writes timestamps (§B1.3)."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )
