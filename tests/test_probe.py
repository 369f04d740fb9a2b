"""probe_server (the hook's "Test connection") against real servers on 127.0.0.1.

Insight itself is the bundled emulator; "not Insight" is a plain stdlib HTTP server; "refused" is a
port nobody listens on; "DNS" is a name under the reserved ``.invalid`` domain.
"""

from __future__ import annotations

import http.server
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_insight.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Emulator, EmulatorConfig
from airflow_insight.emulator import faults as f
from airflow_insight.exceptions import ConfigurationError
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport.probe import ProbeResult, probe_server

WRONG_SECRET = "not-the-secret-9f3k"


def _settings(
    base_url: str, secret: str = DEMO_CLIENT_SECRET, **extra: object
) -> ConnectionSettings:
    return ConnectionSettings(
        base_url=base_url,
        client_id=DEMO_CLIENT_ID,
        client_secret=secret,
        connect_timeout_seconds=5,
        read_timeout_seconds=5,
        **extra,  # type: ignore[arg-type]
    )


def _assert_no_secret(result: ProbeResult) -> None:
    assert DEMO_CLIENT_SECRET not in result.message
    assert WRONG_SECRET not in result.message


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig()) as server:
        yield server


def test_success_names_the_user(emulator: Emulator) -> None:
    result = probe_server(_settings(emulator.base_url))
    assert result.ok, result.message
    assert result.message.startswith("Connected to the Insight server at http://127.0.0.1:")
    assert f" as {DEMO_CLIENT_ID}" in result.message
    _assert_no_secret(result)


def test_success_behind_a_path_prefix_and_with_a_json_token() -> None:
    config = EmulatorConfig(path_prefix="/insight", token_response="json")
    with Emulator(config) as server:
        assert probe_server(_settings(server.base_url)).ok
        # Without the prefix the token path is not there: say so, do not blame the credentials.
        bare = f"http://127.0.0.1:{server.port}"
        result = probe_server(_settings(bare))
    assert not result.ok
    assert "HTTP 404" in result.message and "path prefix" in result.message


def test_bad_credentials(emulator: Emulator) -> None:
    result = probe_server(_settings(emulator.base_url, secret=WRONG_SECRET))
    assert not result.ok
    assert "refused the credentials (HTTP 401)" in result.message
    assert "client ID and client secret" in result.message
    _assert_no_secret(result)


def test_server_trouble_is_not_blamed_on_credentials(emulator: Emulator) -> None:
    emulator.inject(f.HttpError(method="POST", path="/api/authentication/token", status=503))
    try:
        result = probe_server(_settings(emulator.base_url))
    finally:
        emulator.clear_faults()
    assert not result.ok
    assert "HTTP 503" in result.message and "try again later" in result.message


def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nobody listens on the port any more.
    result = probe_server(_settings(f"http://127.0.0.1:{port}"))
    assert not result.ok
    assert "connection refused" in result.message
    assert f"127.0.0.1:{port}" in result.message


def test_unknown_host() -> None:
    result = probe_server(_settings("https://insight.invalid"))
    assert not result.ok
    assert "does not resolve (DNS)" in result.message


def test_user_info_in_the_url_is_refused_before_any_probe() -> None:
    # ConnectionSettings refuses it, so test_connection reports that and never sends it anywhere.
    with pytest.raises(ConfigurationError, match="user name or password") as caught:
        _settings("https://someone:hunter2@insight.invalid")
    assert "hunter2" not in str(caught.value) and "someone" not in str(caught.value)


class _NotInsight(http.server.BaseHTTPRequestHandler):
    """A web server that is not Insight: an HTML page at /, 404 for everything else."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if self.path.startswith("/html/"):
            body, status = b"<html><body>Welcome to nginx!</body></html>", 200
        else:
            body, status = b"<html><body>Not Found</body></html>", 404
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass


@pytest.fixture(scope="module")
def not_insight() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotInsight)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_not_insight_404(not_insight: str) -> None:
    result = probe_server(_settings(not_insight))
    assert not result.ok
    assert "no Insight 5 (v2 API) server at this URL" in result.message


def test_not_insight_html_page(not_insight: str) -> None:
    result = probe_server(_settings(f"{not_insight}/html/"))
    assert not result.ok
    assert "not with a bearer token (content type text/html)" in result.message


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_failure_points_at_ca_bundle_and_the_bundle_fixes_it(
    self_signed: tuple[Path, Path],
) -> None:
    cert, key = self_signed
    config = EmulatorConfig(tls_cert_path=str(cert), tls_key_path=str(key))
    with Emulator(config) as server:
        assert server.base_url.startswith("https://")
        failed = probe_server(_settings(server.base_url))
        trusted = probe_server(_settings(server.base_url, ca_bundle_path=str(cert)))
        unverified = probe_server(_settings(server.base_url, verify_tls=False))
    assert not failed.ok
    assert "TLS handshake" in failed.message
    assert "certificate verify failed" in failed.message
    assert "ca_bundle_path" in failed.message and "verify_tls" in failed.message
    assert trusted.ok, trusted.message
    assert unverified.ok, unverified.message
