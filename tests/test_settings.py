"""Reading a connection into ConnectionSettings: the refused scheme-less host and the new extras.

The connection-reading code lives in ``airflow_insight.settings`` (no Airflow import); the hook
re-exports it. The "before any network call" checks use a real listening socket on 127.0.0.1 and
look, without blocking, whether anything connected to it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_insight import settings as settings_module
from airflow_insight.exceptions import ConfigurationError
from airflow_insight.hooks import insight as hook_module
from airflow_insight.hooks.insight import InsightHook
from airflow_insight.settings import (
    DEFAULT_UNREACHABLE_LIMIT_SECONDS,
    ConnectionSettings,
    settings_from_connection,
)

SECRET = "s3cret-value-xyz"
ADD_SCHEME = "add http:// or https://"


@dataclasses.dataclass
class _PlainConnection:
    """Not an Airflow Connection: only the fields of the ConnectionLike protocol."""

    host: str | None
    conn_id: str = "plain"
    schema: str | None = None
    login: str | None = "client-1"
    password: str | None = SECRET
    port: int | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def extra_dejson(self) -> dict[str, Any]:
        return self.extra


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A listening socket nobody accepts from: a connection attempt would wait in its backlog."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.setblocking(False)
        yield sock


def _nobody_connected(sock: socket.socket) -> bool:
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return True
    conn.close()
    return False


def _connection_env(monkeypatch: pytest.MonkeyPatch, conn_id: str, host: str) -> None:
    document = {"conn_type": "insight", "host": host, "login": "client-1", "password": SECRET}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(document))


@pytest.mark.parametrize(
    ("host", "port", "shown"),
    [
        ("127.0.0.1:8765", None, "127.0.0.1:8765"),
        ("insight.example.com", None, "insight.example.com"),
        ("insight.example.com/insight/", None, "insight.example.com/insight"),
        ("localhost", 8765, "localhost:8765"),  # urlsplit would read "localhost:8765" as a scheme
    ],
)
def test_a_host_without_a_scheme_is_refused_with_the_fix(
    host: str, port: int | None, shown: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        settings_from_connection(_PlainConnection(host=host, port=port, conn_id="noscheme"))
    message = str(caught.value)
    assert message.startswith("Airflow connection 'noscheme': ")
    assert ADD_SCHEME in message
    assert f"https://{shown} " in message and f"http://{shown} " in message
    assert caught.value.permanent
    assert SECRET not in message


@pytest.mark.parametrize("base_url", ["127.0.0.1:8765", "localhost:8765", "insight.example.com"])
def test_connection_settings_itself_refuses_a_url_without_a_scheme(base_url: str) -> None:
    with pytest.raises(ConfigurationError, match=ADD_SCHEME):
        ConnectionSettings(base_url=base_url, client_id="c", client_secret=SECRET)


@pytest.mark.parametrize(
    ("host", "schema", "expected"),
    [
        ("https://insight.example.com", None, "https://insight.example.com/"),
        ("HTTP://127.0.0.1:8765", None, "HTTP://127.0.0.1:8765/"),
        # The scheme is given, in the schema field (as Airflow's URI form puts it): no guess.
        ("127.0.0.1:8765", "http", "http://127.0.0.1:8765/"),
        ("insight.example.com/insight", "https", "https://insight.example.com/insight/"),
    ],
)
def test_a_scheme_given_in_host_or_schema_is_accepted(
    host: str, schema: str | None, expected: str
) -> None:
    settings = settings_from_connection(_PlainConnection(host=host, schema=schema))
    assert settings.base_url.lower() == expected.lower()


def test_test_connection_says_add_a_scheme_and_sends_nothing(
    monkeypatch: pytest.MonkeyPatch, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    _connection_env(monkeypatch, "insight_noscheme", f"127.0.0.1:{port}")
    ok, message = InsightHook("insight_noscheme").test_connection()
    assert not ok
    assert ADD_SCHEME in message and f"http://127.0.0.1:{port}" in message
    assert "verify_tls" not in message and "TLS handshake" not in message
    assert _nobody_connected(listener)


def test_the_operator_fails_without_retry_and_without_a_network_call(
    monkeypatch: pytest.MonkeyPatch, listener: socket.socket
) -> None:
    from airflow_insight.operators.insight import InsightJobOperator

    port = listener.getsockname()[1]
    _connection_env(monkeypatch, "insight_noscheme", f"127.0.0.1:{port}")
    operator = InsightJobOperator(task_id="solve", insight_conn_id="insight_noscheme")
    # AirflowFailException is how a task says "do not retry"; the context is never reached.
    with pytest.raises(AirflowFailException, match=ADD_SCHEME):
        operator.execute(context={})  # type: ignore[arg-type]
    assert _nobody_connected(listener)


def _airflow_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run this venv's ``airflow`` with ``args`` in ``env``; its output as text."""
    airflow = str(Path(sys.executable).with_name("airflow"))
    return subprocess.run(
        [airflow, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_airflow_connections_test_cli_says_add_a_scheme(
    tmp_path: Path, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    document = {
        "conn_type": "insight",
        "host": f"127.0.0.1:{port}",
        "login": "c",
        "password": SECRET,
    }
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW_CONN_INSIGHT_NOSCHEME": json.dumps(document),
        "COLUMNS": "400",  # so the console does not wrap the message
    }
    done = _airflow_cli(env, "connections", "test", "insight_noscheme")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Connection failed!" in done.stdout
    assert ADD_SCHEME in done.stdout
    assert "verify_tls" not in done.stdout and SECRET not in done.stdout + done.stderr
    assert _nobody_connected(listener)


def test_unreachable_limit_defaults_to_ten_minutes() -> None:
    settings = settings_from_connection(_PlainConnection(host="https://h.example"))
    assert settings.unreachable_limit_seconds == DEFAULT_UNREACHABLE_LIMIT_SECONDS == 600.0


@pytest.mark.parametrize(("value", "expected"), [(120, 120.0), ("90.5", 90.5), ("", 600.0)])
def test_unreachable_limit_extra_is_read(value: object, expected: float) -> None:
    conn = _PlainConnection(host="https://h.example", extra={"unreachable_limit_seconds": value})
    assert settings_from_connection(conn).unreachable_limit_seconds == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [(0, "positive"), (-5, "positive"), ("soon", "a number"), (True, "a number")],
)
def test_unreachable_limit_extra_must_be_a_positive_number(value: object, fragment: str) -> None:
    conn = _PlainConnection(host="https://h.example", extra={"unreachable_limit_seconds": value})
    with pytest.raises(ConfigurationError) as caught:
        settings_from_connection(conn)
    assert "'unreachable_limit_seconds'" in str(caught.value) and fragment in str(caught.value)


def test_connection_settings_refuses_a_non_positive_unreachable_limit() -> None:
    with pytest.raises(ConfigurationError, match="unreachable_limit_seconds must be positive"):
        ConnectionSettings(
            base_url="https://h.example", client_id="c", client_secret=SECRET,
            unreachable_limit_seconds=0,
        )  # fmt: skip


def test_the_hook_module_re_exports_the_connection_reader() -> None:
    assert hook_module.settings_from_connection is settings_module.settings_from_connection
    assert hook_module.base_url is settings_module.base_url
    assert "unreachable_limit_seconds" in hook_module.KNOWN_EXTRAS


def test_reading_a_connection_imports_no_airflow() -> None:
    code = (
        "import sys; import airflow_insight.settings; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'airflow'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- the URI form


@pytest.mark.parametrize(
    ("uri", "expected", "verify_tls"),
    [
        # The scheme as an extra (docs/connection.md's first URI form).
        (
            f"insight://client-1:{SECRET}@insight.example.com/?scheme=https&verify_tls=true",
            "https://insight.example.com/",
            True,
        ),
        (
            f"insight://demo-client:{SECRET}@127.0.0.1:8765/?scheme=http&verify_tls=false",
            "http://127.0.0.1:8765/",
            False,
        ),
        # The scheme as the URI path, which Airflow keeps in the schema field.
        (
            f"insight://client-1:{SECRET}@insight.example.com:8443/https?verify_tls=true",
            "https://insight.example.com:8443/",
            True,
        ),
        # Airflow's own host-with-protocol URI form.
        (
            f"insight://https://client-1:{SECRET}@insight.example.com:8443",
            "https://insight.example.com:8443/",
            True,
        ),
    ],
)
def test_each_documented_uri_form_reads_through_airflow(
    monkeypatch: pytest.MonkeyPatch, uri: str, expected: str, verify_tls: bool
) -> None:
    """Through ``AIRFLOW_CONN_<ID>`` and Airflow's own URI parsing, as a user sets it."""
    monkeypatch.setenv("AIRFLOW_CONN_INSIGHT_URI_FORM", uri)
    settings = InsightHook("insight_uri_form").get_settings()
    assert settings.base_url == expected
    assert settings.verify_tls is verify_tls
    assert settings.client_secret == SECRET
    assert settings.connection_id == "insight_uri_form"
    assert settings.server_name == f"{expected.rstrip('/')} (Airflow connection 'insight_uri_form')"


def test_a_uri_without_a_scheme_is_refused_with_the_uri_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_INSIGHT_URI_FORM",
        f"insight://demo-client:{SECRET}@127.0.0.1:8765/?verify_tls=true",
    )
    with pytest.raises(ConfigurationError) as caught:
        InsightHook("insight_uri_form").get_settings()
    message = str(caught.value)
    assert ADD_SCHEME in message
    assert "?scheme=https" in message
    assert SECRET not in message


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        (f"insight://c:{SECRET}@host/https?scheme=http", "disagree"),
        (f"insight://https://c:{SECRET}@host?scheme=http", "says https"),
        (f"insight://c:{SECRET}@host/?scheme=ftp", "must be http or https"),
        # A path next to a full URL would be a lost path prefix: refused, not dropped.
        (f"insight://https://c:{SECRET}@host:8443/insight", "cannot be a path prefix"),
    ],
)
def test_a_contradictory_uri_is_refused(
    monkeypatch: pytest.MonkeyPatch, uri: str, fragment: str
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_INSIGHT_URI_FORM", uri)
    with pytest.raises(ConfigurationError, match=fragment):
        InsightHook("insight_uri_form").get_settings()


def test_the_scheme_extra_is_known_not_a_typo(caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_from_connection(
        _PlainConnection(host="insight.example.com", extra={"scheme": "https"})
    )
    assert settings.base_url == "https://insight.example.com/"
    assert "unknown Insight connection extras" not in caplog.text


def test_airflow_connections_test_verbose_prints_who_and_until_when(tmp_path: Path) -> None:
    """Airflow's CLI drops the message of a successful test and silences logging unless
    ``--verbose``; with it, the hook's logged message names the user and the token's end."""
    from airflow_insight.emulator import Emulator, EmulatorConfig

    with Emulator(EmulatorConfig(port=0)) as emulator:
        client_id, secret = next(iter(emulator.config.credentials.items()))
        netloc = emulator.base_url.split("://", 1)[1].rstrip("/")
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(tmp_path),
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW_CONN_INSIGHT_CLI": f"insight://{client_id}:{secret}@{netloc}/?scheme=http",
            "COLUMNS": "400",
        }
        done = _airflow_cli(env, "connections", "test", "insight_cli", "--verbose")
    text = done.stdout + done.stderr
    assert done.returncode == 0, text
    assert "Connection success!" in done.stdout
    assert f"as {client_id}; token valid until" in text, text
    assert secret not in text
