"""Who hears of each secret the transport holds: the client secret and every minted token.

A token is kept out of our own log lines by care, but a third-party library's debug log or an
exception's text may still carry it. Whoever renders logs can register here to learn each secret
the moment the transport has it (the hook wires Airflow's secrets masker), so such a line is
redacted. Listeners are process-wide because tokens are minted by every REST client of the
process, including the ones a shared socket or a probe creates on its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["SecretListener", "add_secret_listener", "announce_secret", "remove_secret_listener"]

log = logging.getLogger(__name__)

#: Called with one secret value (a bearer token or the client secret); must not log it.
SecretListener = Callable[[str], None]

_listeners: list[SecretListener] = []
_lock = threading.Lock()


def add_secret_listener(listener: SecretListener) -> None:
    """Tell ``listener`` of every secret announced from now on (once, however often added)."""
    with _lock:
        if listener not in _listeners:
            _listeners.append(listener)


def remove_secret_listener(listener: SecretListener) -> None:
    """Stop telling ``listener`` (a no-op when it was not added)."""
    with _lock:
        if listener in _listeners:
            _listeners.remove(listener)


def announce_secret(secret: str) -> None:
    """Tell every listener of ``secret``, before anything can log it.

    A listener that fails is reported (without the secret) and skipped: masking is a safeguard
    and must not fail the job that minted the token.
    """
    if not secret:
        return
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(secret)
        except Exception as exc:
            log.warning("Could not register a secret for masking (%s)", type(exc).__name__)
