"""The async driver's socket opener (transport.async_handshake) keeps blocking work off the loop."""

from __future__ import annotations

import asyncio
import ssl
import threading

import pytest
from support import unused_port

from airflow_insight.exceptions import TransportError
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport import async_handshake
from airflow_insight.transport.network import tls_context


def test_tls_context_is_built_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading the CA store takes tens of ms; the triggerer reports a loop blocked 0.2 s."""
    threads: list[threading.Thread] = []

    def recording(settings: ConnectionSettings) -> ssl.SSLContext:
        threads.append(threading.current_thread())
        return tls_context(settings)

    monkeypatch.setattr(async_handshake, "tls_context", recording)
    settings = ConnectionSettings(
        f"https://127.0.0.1:{unused_port()}", "client", "secret", connect_timeout_seconds=2.0
    )

    async def main() -> threading.Thread:
        with pytest.raises(TransportError, match="cannot open the Insight progress socket"):
            await async_handshake.open_socket(settings, "token")
        return threading.current_thread()

    loop_thread = asyncio.run(main())
    assert len(threads) == 1
    assert threads[0] is not loop_thread
