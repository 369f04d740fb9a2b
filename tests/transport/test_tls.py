"""TLS with a private CA, and the three ways a certificate is rejected, on REST and both sockets.

Each rejection is a :class:`CertificateRejected` (permanent: the task fails without retries)
whose message says what to do for that cause; nothing is retried.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from tls_certs import authority, server_certificate

from airflow_insight.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Emulator, EmulatorConfig
from airflow_insight.exceptions import CertificateRejected
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport import async_handshake, sync_handshake
from airflow_insight.transport.rest import InsightRestClient

#: Each rejection: the server certificate to serve, and words of its own advice.
CASES = {
    "wrong CA": ("other", "not signed by a CA this machine trusts", "ca_bundle_path"),
    "expired": ("expired", "outside its validity dates", "renew the server's certificate"),
    "host-name mismatch": ("elsewhere", "not issued for 127.0.0.1", "set the connection's host"),
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | tuple[Path, Path]]:
    """The private CA's bundle and the server certificates of each case."""
    directory = tmp_path_factory.mktemp("pki")
    ca = authority(directory, "private")
    other = authority(directory, "other")
    made = {
        "good": server_certificate(directory, ca, "good"),
        "other": server_certificate(directory, other, "other"),
        "expired": server_certificate(directory, ca, "expired", expired=True),
        "elsewhere": server_certificate(directory, ca, "elsewhere", hosts=("insight.example",)),
    }
    return {"ca": ca.bundle, **{k: (v.cert_path, v.key_path) for k, v in made.items()}}


def _serving(pki: dict[str, Path | tuple[Path, Path]], which: str) -> Emulator:
    cert, key = pki[which]  # type: ignore[misc]
    return Emulator(EmulatorConfig(tls_cert_path=str(cert), tls_key_path=str(key))).start()


@pytest.fixture
def emulators(pki: dict[str, Path | tuple[Path, Path]]) -> Iterator[dict[str, Emulator]]:
    running = {which: _serving(pki, which) for which in ("good", "other", "expired", "elsewhere")}
    yield running
    for emulator in running.values():
        emulator.stop()


def _settings(emulator: Emulator, ca: Path) -> ConnectionSettings:
    return ConnectionSettings(
        base_url=emulator.base_url,
        client_id=DEMO_CLIENT_ID,
        client_secret=DEMO_CLIENT_SECRET,
        ca_bundle_path=str(ca),
        connect_timeout_seconds=10.0,
    )


def test_the_private_ca_serves_rest_and_both_sockets(
    emulators: dict[str, Emulator], pki: dict[str, Path | tuple[Path, Path]]
) -> None:
    settings = _settings(emulators["good"], pki["ca"])  # type: ignore[arg-type]
    assert settings.websocket_url.startswith("wss://")
    with InsightRestClient(settings) as rest:
        token = rest.current_token().value
    ws, _ = sync_handshake.open_socket(settings, token)
    ws.close()

    async def open_async() -> None:
        socket, _ = await async_handshake.open_socket(settings, token)
        await socket.close()

    asyncio.run(open_async())


@pytest.mark.parametrize("case", list(CASES))
def test_a_rejected_certificate_fails_at_once_with_its_own_advice(
    case: str, emulators: dict[str, Emulator], pki: dict[str, Path | tuple[Path, Path]]
) -> None:
    which, cause, advice = CASES[case]
    settings = _settings(emulators[which], pki["ca"])  # type: ignore[arg-type]
    sleeps: list[float] = []
    with (
        InsightRestClient(settings, sleep=sleeps.append) as rest,
        pytest.raises(CertificateRejected) as rest_error,
    ):
        rest.current_token()
    with pytest.raises(CertificateRejected) as sync_error:
        sync_handshake.open_socket(settings, "token")
    with pytest.raises(CertificateRejected) as async_error:
        asyncio.run(async_handshake.open_socket(settings, "token"))
    for error in (rest_error.value, sync_error.value, async_error.value):
        assert error.permanent
        message = str(error)
        assert cause in message and advice in message, message
        assert DEMO_CLIENT_SECRET not in message
    assert sleeps == []  # not retried
    # Other causes' advice is not given: each message points at its one fix.
    others = [words for name, (_, *words) in CASES.items() if name != case]
    for words in others:
        assert words[0] not in str(rest_error.value)
