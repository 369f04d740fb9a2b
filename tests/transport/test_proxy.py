"""An HTTPS Insight server reached through the HTTP CONNECT proxy ``HTTPS_PROXY`` names: REST
(``requests``) and both progress sockets; and ``NO_PROXY`` sending them straight to the server.

The proxy (``connect_proxy``) records each tunnel's target, so the test sees where traffic went.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from connect_proxy import ConnectProxy
from tls_certs import authority, server_certificate

from airflow_insight.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Emulator, EmulatorConfig
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport import async_handshake, sync_handshake
from airflow_insight.transport.rest import InsightRestClient

PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Emulator, Path]]:
    """An emulator serving https/wss with a private CA's certificate, and the CA's bundle."""
    directory = tmp_path_factory.mktemp("pki")
    ca = authority(directory, "private")
    cert = server_certificate(directory, ca, "insight")
    config = EmulatorConfig(tls_cert_path=str(cert.cert_path), tls_key_path=str(cert.key_path))
    with Emulator(config) as emulator:
        yield emulator, ca.bundle


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ConnectProxy]:
    """A CONNECT proxy that ``HTTPS_PROXY`` names (and nothing else proxy-related is set)."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with ConnectProxy() as running:
        monkeypatch.setenv("HTTPS_PROXY", running.url)
        yield running


def _talk(settings: ConnectionSettings, job_id: str, proxy: ConnectProxy) -> list[int]:
    """A token and a job over REST, then the progress socket opened by each driver; how many
    tunnels the proxy had opened after each of the three steps."""
    tunnels = []
    with InsightRestClient(settings) as rest:
        token = rest.current_token().value
        rest.submit_job({"id": job_id, "computeJobType": "SOLVER"})
    tunnels.append(len(proxy.targets))
    ws, _ = sync_handshake.open_socket(settings, token)
    ws.close()
    tunnels.append(len(proxy.targets))

    async def open_async() -> None:
        socket, _ = await async_handshake.open_socket(settings, token)
        await socket.close()

    asyncio.run(open_async())
    tunnels.append(len(proxy.targets))
    return tunnels


def _settings(served: tuple[Emulator, Path]) -> ConnectionSettings:
    emulator, bundle = served
    return ConnectionSettings(
        base_url=emulator.base_url,
        client_id=DEMO_CLIENT_ID,
        client_secret=DEMO_CLIENT_SECRET,
        ca_bundle_path=str(bundle),
        connect_timeout_seconds=10.0,
    )


def test_rest_and_both_sockets_go_through_the_connect_proxy(
    served: tuple[Emulator, Path], proxy: ConnectProxy
) -> None:
    emulator, _ = served
    sockets_before = len(emulator.record.of_kind("ws_open"))
    rest, sync_socket, async_socket = _talk(_settings(served), "proxied", proxy)
    # REST through at least one tunnel, then one more tunnel for each driver's socket.
    assert rest >= 1 and (sync_socket, async_socket) == (rest + 1, rest + 2), proxy.targets
    assert set(proxy.targets) == {f"127.0.0.1:{emulator.port}"}
    assert proxy.refused == []
    assert len(emulator.record.of_kind("ws_open")) == sockets_before + 2


def test_no_proxy_sends_everything_straight_to_the_server(
    served: tuple[Emulator, Path], proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert _talk(_settings(served), "not-proxied", proxy) == [0, 0, 0]
    assert proxy.refused == []
