"""probe_server (the hook's "Test connection") against real servers on 127.0.0.1.

Insight itself is the bundled emulator; "not Insight" is a plain stdlib HTTP server; "refused" is a
port nobody listens on; "DNS" is a name under the reserved ``.invalid`` domain.
"""

from __future__ import annotations

import functools
import http
import http.server
import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_insight.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Emulator, EmulatorConfig
from airflow_insight.emulator import faults as f
from airflow_insight.exceptions import ConfigurationError
from airflow_insight.protocol.wire import V2_JSON
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


def _insight_error_body(status: int) -> bytes:
    """A v2 error body as Insight sends it (§B1.4), spelled out here, not made by the emulator."""
    phrase = http.HTTPStatus(status).phrase
    error = {"code": f"FICO-Platform-Http-{status}", "desc": phrase, "message": phrase}
    return json.dumps({"error": {**error, "innerError": None, "traceId": "00ab"}}).encode()


_FOREIGN_BODIES = {
    "html": ("text/html", b"<html><head><title>502 Bad Gateway</title></head><body><center>"
             b"<h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"),
    "text": ("text/plain", b"upstream connect error or disconnect/reset before headers"),
    "json": ("application/json", b'{"detail": "Not Found"}'),
    "empty": ("text/plain", b""),
    "title": ("text/html", b"<html><head><title>Service Unavailable</title></head><body></body>"),
}  # fmt: skip


class _NotInsight(http.server.BaseHTTPRequestHandler):
    """A web server that is not Insight, or a proxy in front of one; the path picks the answer.

    ``/html/``: an HTML page (200). ``/status/<code>/<kind>/``: that status with a body of
    ``kind`` (one of ``_FOREIGN_BODIES``, or ``insight`` for an Insight v2 error body).
    ``/echo/``: 400 echoing the request body. ``/redirect/``: 302 to a login page.
    Anything else: 404 with an HTML page.
    """

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        request_body = self.rfile.read(length)
        parts = self.path.strip("/").split("/")
        headers = {}
        if parts[0] == "html":
            status, content_type, body = (
                200,
                "text/html",
                b"<html><body>Welcome to nginx!</body></html>",
            )
        elif parts[0] == "status":
            status, kind = int(parts[1]), parts[2]
            if kind == "insight":
                content_type, body = V2_JSON, _insight_error_body(status)
            else:
                content_type, body = _FOREIGN_BODIES[kind]
        elif parts[0] == "echo":
            status, content_type, body = 400, "text/plain", b"you sent: " + request_body
        elif parts[0] == "redirect":
            status, content_type, body = 302, "text/html", b""
            headers["Location"] = "https://sso.example.com/login?next=%2Fapi"
        else:
            status, content_type, body = 404, "text/html", b"<html><body>Not Found</body></html>"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass


def _serve(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def not_insight() -> Iterator[str]:
    yield from _serve(_NotInsight)


class _QuietFileServer(http.server.SimpleHTTPRequestHandler):
    """What ``python -m http.server`` runs (it answers 501 to a POST)."""

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def file_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("www")
    handler = functools.partial(_QuietFileServer, directory=str(directory))
    yield from _serve(handler)  # type: ignore[arg-type]


NOT_INSIGHT = "this is not an Insight server"
OVERLOADED = "overloaded or failing; try again later"


def test_a_plain_http_server_is_not_an_insight_server(file_server: str) -> None:
    result = probe_server(_settings(file_server))
    assert not result.ok
    assert NOT_INSIGHT in result.message and OVERLOADED not in result.message
    # What it answered: status, content type and the words of its page.
    assert "HTTP 501 (content type text/html" in result.message
    assert "Unsupported method" in result.message
    _assert_no_secret(result)


def test_not_insight_404(not_insight: str) -> None:
    result = probe_server(_settings(not_insight))
    assert not result.ok
    assert NOT_INSIGHT in result.message and "path prefix" in result.message
    assert 'HTTP 404 (content type text/html: "Not Found")' in result.message


def test_not_insight_html_page(not_insight: str) -> None:
    result = probe_server(_settings(f"{not_insight}/html/"))
    assert not result.ok
    assert NOT_INSIGHT in result.message
    assert 'HTTP 200 (content type text/html: "Welcome to nginx!") instead of a bearer token' in (
        result.message
    )


@pytest.mark.parametrize(
    ("status", "kind", "fragment"),
    [
        (501, "html", "502 Bad Gateway"),  # the page's words, whatever the status line says
        (500, "text", "upstream connect error"),
        (404, "json", '{\\"detail\\": \\"Not Found\\"}'),
        (400, "empty", "empty body"),
        (403, "html", "nginx"),
        (500, "title", '"Service Unavailable"'),  # a page with nothing but a title
    ],
)
def test_an_answer_without_an_insight_error_body_is_not_insight(
    not_insight: str, status: int, kind: str, fragment: str
) -> None:
    result = probe_server(_settings(f"{not_insight}/status/{status}/{kind}/"))
    assert not result.ok
    assert NOT_INSIGHT in result.message and OVERLOADED not in result.message
    assert f"HTTP {status} (content type" in result.message and fragment in result.message


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_insight_saying_it_is_busy_is_overloaded(not_insight: str, status: int) -> None:
    result = probe_server(_settings(f"{not_insight}/status/{status}/insight/"))
    assert not result.ok
    assert OVERLOADED in result.message and NOT_INSIGHT not in result.message
    assert f"HTTP {status} ({http.HTTPStatus(status).phrase})" in result.message


@pytest.mark.parametrize(("status", "kind"), [(502, "html"), (503, "text"), (429, "empty")])
def test_a_proxy_answering_for_a_stopped_insight_says_so(
    not_insight: str, status: int, kind: str
) -> None:
    result = probe_server(_settings(f"{not_insight}/status/{status}/{kind}/"))
    assert not result.ok
    assert "not an answer from Insight: a proxy or load balancer answered" in result.message
    assert "try again later" in result.message and "check it" in result.message
    assert OVERLOADED not in result.message and NOT_INSIGHT not in result.message


def test_insight_rejecting_the_request_names_the_extra(not_insight: str) -> None:
    result = probe_server(_settings(f"{not_insight}/status/422/insight/"))
    assert not result.ok
    assert "HTTP 422 (Unprocessable Entity)" in result.message
    assert "max_age_seconds extra" in result.message


def test_a_redirect_names_where_it_goes(not_insight: str) -> None:
    result = probe_server(_settings(f"{not_insight}/redirect/"))
    assert not result.ok
    assert "a redirect to https://sso.example.com/login:" in result.message  # no query
    assert NOT_INSIGHT in result.message


def test_a_server_echoing_the_request_does_not_leak_the_secret(not_insight: str) -> None:
    result = probe_server(_settings(f"{not_insight}/echo/"))
    assert not result.ok
    assert "you sent:" in result.message and "***" in result.message
    _assert_no_secret(result)


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
    # The REST client's TLS rule: the cause, then what to do about it.
    assert "TLS with the Insight server at https://127.0.0.1:" in failed.message
    assert "not signed by a CA this machine trusts" in failed.message
    assert "ca_bundle_path" in failed.message and "verify_tls" in failed.message
    assert trusted.ok, trusted.message
    assert unverified.ok, unverified.message
