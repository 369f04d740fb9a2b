"""The Insight connection form, as a real Airflow API server serves it and a real browser shows it.

Starts ``airflow api-server`` on a free loopback port (own AIRFLOW_HOME, migrated SQLite DB, every
user an admin), checks the form metadata over the UI REST API, then drives headless Chromium over
the Chrome DevTools Protocol (a tiny client on ``websocket-client``): open "Add Connection", pick
the Insight type, fill the standard fields, open "Extra Fields", take the screenshot kept at
``docs/images/connection-form.png`` and save the connection, which is then read back over REST.

Screenshots go to a temporary directory, so a test run leaves the repository untouched; set
``INSIGHT_UPDATE_SCREENSHOTS=1`` to refresh the ones under ``docs/images`` instead.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket
from support import unused_port

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT_DIR = REPO / "docs" / "images"
SCREENSHOT = "connection-form.png"
SCREENSHOT_STANDARD = "connection-form-standard.png"
CHROMIUM = "/usr/bin/chromium"
AIRFLOW = str(Path(sys.executable).with_name("airflow"))

STANDARD_LABELS = ("Insight server URL", "Client ID", "Client secret")
EXTRA_LABELS = (
    "Token lifetime (seconds)",
    "Verify TLS certificate",
    "CA bundle path",
    "Connect timeout (seconds)",
    "Read timeout (seconds)",
    "Unreachable limit (seconds)",
    "Accepted model statuses",
    "Insight web UI URL",
    "Job link template",
)
EXTRA_KEYS = {
    "max_age_seconds": ["integer", "null"],
    "verify_tls": ["boolean", "null"],
    "ca_bundle_path": ["string", "null"],
    "connect_timeout_seconds": ["number", "null"],
    "read_timeout_seconds": ["number", "null"],
    "unreachable_limit_seconds": ["number", "null"],
    "accepted_model_statuses": ["string", "null"],
    "ui_base_url": ["string", "null"],
    "ui_job_url_template": ["string", "null"],
}


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left (uvicorn forks workers)."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            # The leader is gone; make sure no worker of its group survives it.
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def api_server() -> Iterator[str]:
    """A real Airflow API server; yields its base URL."""
    home = Path(tempfile.mkdtemp(prefix="airflow-insight-ui-"))
    port = unused_port()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__WORKERS": "1",
    }
    subprocess.run(
        [AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=120
    )
    log = (home / "api-server.log").open("wb")
    server = subprocess.Popen(
        [AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _get_json(f"{base_url}/api/v2/monitor/health")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        "airflow api-server did not come up:\n"
                        + (home / "api-server.log").read_text(errors="replace")[-3000:]
                    )
                time.sleep(0.25)
        yield base_url
    finally:
        _stop_group(server)
        log.close()
        shutil.rmtree(home, ignore_errors=True)


def test_api_server_serves_the_insight_form_metadata(api_server: str) -> None:
    types = _get_json(f"{api_server}/ui/connections/hook_meta")
    insight = next(item for item in types if item["connection_type"] == "insight")

    assert insight["hook_name"] == "FICO Xpress Insight"
    assert insight["hook_class_name"] == "airflow_insight.hooks.insight.InsightHook"
    standard = insight["standard_fields"]
    assert standard["host"]["title"] == "Insight server URL"
    assert standard["host"]["placeholder"].startswith("https://")
    assert standard["login"]["title"] == "Client ID"
    assert standard["password"]["title"] == "Client secret"
    assert standard["url_schema"]["hidden"] is True
    assert standard["port"]["hidden"] is True
    extras = insight["extra_fields"]
    assert {key: extras[key]["schema"]["type"] for key in extras} == EXTRA_KEYS
    assert [extras[key]["schema"]["title"] for key in EXTRA_KEYS] == list(EXTRA_LABELS)


class _DevTools:
    """Just enough of the Chrome DevTools Protocol: call a method, wait for its answer."""

    def __init__(self, ws_url: str) -> None:
        self._ws = websocket.create_connection(ws_url, timeout=20, suppress_origin=True)
        self._last_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._last_id += 1
        call_id = self._last_id
        self._ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:  # events arrive in between; skip them
            message = json.loads(self._ws.recv())
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message["result"])

    def js(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, condition: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.js(f"!!({condition})"):
            if time.monotonic() > deadline:
                text = self.js("document.body ? document.body.innerText : ''")
                raise AssertionError(f"timed out waiting for {condition}; page text:\n{text}")
            time.sleep(0.1)

    def click(self, selector_js: str) -> None:
        """A real mouse click in the middle of the element (some widgets ignore el.click())."""
        x, y = self.js(
            f"(() => {{ const el = {selector_js}; el.scrollIntoView({{block: 'center'}});"
            " const r = el.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2];"
            " })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def type_into(self, selector_js: str, text: str) -> None:
        self.js(f"{selector_js}.focus()")
        self.call("Input.insertText", text=text)

    def press_enter(self) -> None:
        for kind in ("keyDown", "keyUp"):
            self.call(
                "Input.dispatchKeyEvent",
                type=kind,
                key="Enter",
                code="Enter",
                windowsVirtualKeyCode=13,
                nativeVirtualKeyCode=13,
            )

    def close(self) -> None:
        self._ws.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[_DevTools]:
    """Headless Chromium with remote debugging on a port it picks itself."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing: install the Debian package 'chromium'")
    profile = tmp_path / "chromium-profile"
    process = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and "\n" in port_file.read_text()):
            assert process.poll() is None, "chromium exited at start-up"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        targets = _get_json(f"http://127.0.0.1:{port}/json/list")
        page = next(target for target in targets if target["type"] == "page")
        devtools = _DevTools(page["webSocketDebuggerUrl"])
        try:
            yield devtools
        finally:
            devtools.close()
    finally:
        _stop_group(process)


DIALOG = "document.querySelector('[role=dialog]')"


def _button(text: str, scope: str = "document") -> str:
    return (
        f"Array.from({scope}.querySelectorAll('button'))"
        f".find(b => b.innerText.trim() === {json.dumps(text)})"
    )


def _screenshot_dialog(browser: _DevTools, path: Path) -> None:
    """Save a PNG of just the dialog (the docs show it)."""
    rect = browser.js(
        f"(() => {{ const r = {DIALOG}.getBoundingClientRect();"
        " return {x: r.x, y: r.y, width: r.width, height: r.height}; })()"
    )
    shot = browser.call("Page.captureScreenshot", format="png", clip={**rect, "scale": 1})
    png = base64.b64decode(shot["data"])
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)


def test_add_connection_form_in_browser(
    api_server: str, browser: _DevTools, tmp_path: Path
) -> None:
    shots = SCREENSHOT_DIR if os.environ.get("INSIGHT_UPDATE_SCREENSHOTS") == "1" else tmp_path
    browser.call("Emulation.setDeviceMetricsOverride", width=1280, height=1500,
                 deviceScaleFactor=1, mobile=False)  # fmt: skip
    browser.call("Page.navigate", url=f"{api_server}/connections")
    browser.wait_for(_button("Add Connection"))
    browser.click(_button("Add Connection"))
    browser.wait_for(f"{DIALOG} && {DIALOG}.querySelector('input[name=connection_id]')")

    browser.type_into(f"{DIALOG}.querySelector('input[name=connection_id]')", "insight_ui_test")
    # The type picker is a react-select combobox: type to filter, Enter to pick.
    browser.type_into(f"{DIALOG}.querySelector('input[role=combobox]')", "Xpress Insight")
    browser.wait_for("document.querySelector('[id*=-option-]')")
    browser.press_enter()
    browser.wait_for(f"{DIALOG}.innerText.includes('Insight server URL')")

    standard_text = browser.js(f"{DIALOG}.innerText")
    for label in STANDARD_LABELS:
        assert label in standard_text
    for hidden in ("Schema", "Port"):
        assert hidden not in standard_text.split("Standard Fields", 1)[1]
    browser.type_into(f"{DIALOG}.querySelector('input[name=host]')", "https://insight.example.com")
    browser.type_into(f"{DIALOG}.querySelector('input[name=login]')", "ui-test-client")
    browser.type_into(f"{DIALOG}.querySelector('input[name=password]')", "ui-test-secret")
    _screenshot_dialog(browser, shots / SCREENSHOT_STANDARD)

    browser.click(_button("Extra Fields", DIALOG))
    browser.wait_for(f"{DIALOG}.innerText.includes('Job link template')")
    time.sleep(0.5)  # let the accordion's opening animation finish before the screenshot
    dialog_text = browser.js(f"{DIALOG}.innerText")
    for label in EXTRA_LABELS:
        assert label in dialog_text

    _screenshot_dialog(browser, shots / SCREENSHOT)

    browser.click(_button("Save", DIALOG))
    browser.wait_for(f"!{DIALOG}", timeout=20)
    saved = _get_json(f"{api_server}/api/v2/connections/insight_ui_test")
    assert saved["conn_type"] == "insight"
    assert saved["host"] == "https://insight.example.com"
    assert saved["login"] == "ui-test-client"
    extra = json.loads(saved["extra"])
    assert extra["verify_tls"] is True
    assert extra["accepted_model_statuses"] == "OK"
    assert extra["connect_timeout_seconds"] == 10
