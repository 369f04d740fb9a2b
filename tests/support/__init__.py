"""What every test folder shares: an emulator's settings and connection, a free port, checks.

The checks: no secret leaked (``assert_no_secrets``), the keep-alive held
(``assert_pings_answered``).

Test code imports it by its name from the ``tests`` folder, ``from support import …`` (see
``docs/contributing.md#tests``). Its fixtures live in ``support.fixtures``, which the root
``tests/conftest.py`` registers for every folder; a folder's conftest overrides a fixture only
where its tests need something different (its job scripts, an ``AIRFLOW_CONN_*`` variable).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from airflow_insight.emulator import DEMO_CLIENT_SECRET, Emulator, EmulatorConfig
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport.retry import RetryPolicy

#: The ``start_emulator`` fixture: an emulator whose config is ``emulator_config`` with the given
#: fields replaced.
StartEmulator = Callable[..., Emulator]

#: Tiny keep-alive intervals: a socket that stops answering pings is closed within seconds.
QUICK_KEEPALIVE = EmulatorConfig(ping_interval_seconds=0.1, pong_timeout_seconds=2.0)

#: Retries without waiting for long, so a test of a fault ends quickly.
FAST_RETRY = RetryPolicy(max_attempts=5, base_delay_seconds=0.01, max_delay_seconds=0.1)

#: Timeouts (seconds) with room for a loaded 2-core machine; nothing asserts on them.
CONNECT_TIMEOUT_SECONDS = 2.0
READ_TIMEOUT_SECONDS = 5.0


def emulator_settings(emulator: Emulator, **overrides: Any) -> ConnectionSettings:
    """Connection settings for ``emulator`` with its first credentials (the demo pair)."""
    client_id, secret = next(iter(emulator.config.credentials.items()))
    options: dict[str, Any] = {
        "base_url": emulator.base_url,
        "client_id": client_id,
        "client_secret": secret,
        "connect_timeout_seconds": CONNECT_TIMEOUT_SECONDS,
        "read_timeout_seconds": READ_TIMEOUT_SECONDS,
        **overrides,
    }
    return ConnectionSettings(**options)


def unused_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound once, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def connection_json(emulator: Emulator, *, client_secret: str | None = None) -> str:
    """``emulator`` as an Airflow connection (``AIRFLOW_CONN_*`` JSON) with the test timeouts."""
    return emulator.airflow_connection_json(
        client_secret=client_secret,
        extra={
            "connect_timeout_seconds": CONNECT_TIMEOUT_SECONDS,
            "read_timeout_seconds": READ_TIMEOUT_SECONDS,
        },
    )


def issued_tokens(emulator: Emulator) -> list[str]:
    """Every bearer token ``emulator`` has minted and not yet forgotten.

    The emulator offers no public list of them (a server never would), so this is the one place
    tests read its token store.
    """
    return list(emulator.hub.tokens._tokens)


def assert_no_secrets(emulator: Emulator, *texts: str) -> None:
    """Neither the client secret nor any token ``emulator`` minted appears in ``texts``."""
    text = "\n".join(texts)
    assert text, "nothing to check: the check would prove nothing"
    tokens = issued_tokens(emulator)
    assert tokens, "no token was minted: the check would prove nothing"
    for secret in (DEMO_CLIENT_SECRET, *emulator.config.credentials.values(), *tokens):
        where = text.find(secret)
        assert where < 0, f"a secret in the output: {text[max(0, where - 300) : where + 50]!r}"


#: The close code the emulator gives a socket whose pong did not come within its limit.
MISSED_PONG_CLOSE_CODE = 1001


def assert_pings_answered(emulator: Emulator) -> None:
    """The client answered the server's pings: pongs came, each for a ping the server sent, and
    the server closed no socket for a missed pong.

    The server's own pong limit is the judge: counting pings against pongs would depend on how
    many pings the run's real duration allowed, and on which ones were sent just before the end.
    """
    pings = {entry.data["payload"] for entry in emulator.record.of_kind("ping")}
    pongs = [entry.data["payload"] for entry in emulator.record.of_kind("pong")]
    assert pongs, f"no pong was recorded for {len(pings)} pings"
    strays = [payload for payload in pongs if payload not in pings]
    assert not strays, f"pongs for pings the server never sent: {strays}"
    missed = [
        entry.data
        for entry in emulator.record.of_kind("ws_close")
        if entry.data["by"] == "server" and entry.data["code"] == MISSED_PONG_CLOSE_CODE
    ]
    assert not missed, f"the server closed a socket for a missed pong: {missed}"


__all__ = [
    "CONNECT_TIMEOUT_SECONDS",
    "FAST_RETRY",
    "MISSED_PONG_CLOSE_CODE",
    "QUICK_KEEPALIVE",
    "READ_TIMEOUT_SECONDS",
    "StartEmulator",
    "assert_no_secrets",
    "assert_pings_answered",
    "connection_json",
    "emulator_settings",
    "issued_tokens",
    "unused_port",
]
