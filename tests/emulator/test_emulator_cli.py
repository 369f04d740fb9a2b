"""The command line: a real subprocess on port 0, its printed URL, a token, a clean stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import requests

from airflow_insight.emulator.__main__ import build

V2 = "application/vnd.com.fico.xpress.insight.v2+json"


def test_cli_serves_and_stops() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_insight.emulator",
            "--port",
            "0",
            "--path-prefix",
            "/insight",
            "--fault",
            "http:GET:/api/compute-jobs/*:503",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline().strip()
        prefix = "Insight emulator listening on "
        assert first.startswith(prefix), first
        base_url = first.removeprefix(prefix)
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/insight")
        token = requests.post(
            base_url + "/api/authentication/token",
            data=json.dumps({"clientId": "demo-client", "secret": "demo-secret", "maxAge": 60}),
            headers={"Accept": "text/plain", "Content-Type": V2},
            timeout=5,
        ).text
        headers = {"Authorization": f"Bearer {token}", "Accept": V2}
        url = base_url + "/api/compute-jobs/none"
        assert requests.get(url, headers=headers, timeout=5).status_code == 503  # the fault
        assert requests.get(url, headers=headers, timeout=5).status_code == 404
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_cli_options_build_the_config() -> None:
    emulator = build(
        [
            "--port",
            "0",
            "--client-id",
            "a",
            "--client-secret",
            "1",
            "--script",
            "quick",
            "--rule",
            "f-*=failed",
            "--legacy-fields",
            "--json-pings",
            "--token-json",
            "--token-cap",
            "5",
            "--ping-interval",
            "0.5",
            "--pong-timeout",
            "2",
            "--relaxed-media-types",
            "--no-runlog-completed",
            "--simulate-solves",
            "--app-message-timeout",
            "0.5",
            "--no-app-message-resend",
            "--forget-finished-after",
            "0",
        ]
    )
    config = emulator.config
    assert dict(config.credentials) == {"a": "1"}
    assert config.default_script.name == "quick" and config.json_pings
    assert config.spelling.legacy_status_fields and config.token_response == "json"
    assert not config.strict_media_types and not config.send_runlog_completed
    assert emulator.hub.script_for("f-1").name == "failed"
    assert config.simulate_solves and config.app_message_timeout_seconds == 0.5
    assert not config.resend_app_messages_on_subscribe
    assert config.forget_finished_jobs_after_seconds is None  # 0 keeps finished jobs


def test_cli_defaults_for_callbacks_and_cleanup() -> None:
    config = build(["--port", "0"]).config
    assert not config.simulate_solves and config.app_message_timeout_seconds == 60.0
    assert config.resend_app_messages_on_subscribe
    assert config.forget_finished_jobs_after_seconds == 3600.0


@pytest.mark.parametrize(
    "argv",
    [["--script", "nope"], ["--client-id", "a"], ["--rule", "nothing"], ["--fault", "bogus"]],
)
def test_cli_rejects_bad_options(argv: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow_insight.emulator", "--port", "0", *argv],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.strip()
