"""Small plain-library helpers (requests, websocket-client) for emulator tests."""

from __future__ import annotations

import io
import json
import os
import random
import signal
import struct
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import websocket

from airflow_insight.emulator import Emulator, EmulatorConfig, JobScript

V2 = "application/vnd.com.fico.xpress.insight.v2+json"
FAST = JobScript(
    name="fast",
    queued_seconds=0.01,
    log_lines=6,
    lines_per_second=0.0,
    batch_size=3,
    completing_seconds=0.01,
    cancel_seconds=0.01,
)
SLOW = JobScript(
    name="slow", queued_seconds=0.01, log_lines=400, lines_per_second=100.0, batch_size=2
)


def make_config(**overrides: Any) -> EmulatorConfig:
    """A config with tiny intervals and the fast script."""
    settings: dict[str, Any] = {
        "default_script": FAST,
        "ping_interval_seconds": 0.5,
        "pong_timeout_seconds": 5.0,
    }
    settings.update(overrides)
    return EmulatorConfig(**settings)


def mint(emulator: Emulator, max_age: float = 60, **headers: str) -> str:
    response = requests.post(
        emulator.base_url + "/api/authentication/token",
        data=json.dumps({"clientId": "demo-client", "secret": "demo-secret", "maxAge": max_age}),
        headers={"Accept": "text/plain", "Content-Type": V2, **headers},
        timeout=5,
    )
    assert response.status_code == 200, response.text
    return response.text


def auth(token: str, accept: str = V2) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": accept}


def job_request(job_id: str, **fields: Any) -> dict[str, Any]:
    document: dict[str, Any] = {"id": job_id, "computeJobType": "SOLVER", "runLogMessages": True}
    document.update(fields)
    return document


def zip_of(files: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def submit(
    emulator: Emulator,
    token: str,
    document: dict[str, Any] | str,
    *,
    connection_id: str | None = None,
    payload: bytes | None = None,
    part_type: str = V2,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    text = document if isinstance(document, str) else json.dumps(document)
    files: dict[str, Any] = {"computeJobRequest": (None, text, part_type)}
    if payload is not None:
        files["payload"] = ("payload.zip", payload, "application/zip")
    all_headers = auth(token)
    if connection_id is not None:
        all_headers["connection-id"] = connection_id
    all_headers.update(headers or {})
    return requests.post(
        emulator.base_url + "/api/compute-jobs", files=files, headers=all_headers, timeout=5
    )


def connect(emulator: Emulator, token: str, timeout: float = 5.0) -> websocket.WebSocket:
    return websocket.create_connection(
        emulator.websocket_url, header=[f"Authorization: Bearer {token}"], timeout=timeout
    )


def connection_id(ws: websocket.WebSocket) -> str:
    headers = ws.getheaders()
    assert headers is not None
    return str(headers["connection-id"])


def send(ws: websocket.WebSocket, message_type: str, payload: Any, **extra: Any) -> None:
    ws.send(json.dumps({"messageType": message_type, "messagePayload": payload, **extra}))


def recv_json(ws: websocket.WebSocket) -> dict[str, Any]:
    message = json.loads(ws.recv())
    assert isinstance(message, dict)
    return message


def collect(
    ws: websocket.WebSocket,
    until: Callable[[dict[str, Any]], bool],
    timeout: float = 5.0,
) -> list[dict[str, Any]]:
    """Messages up to and including the first that satisfies ``until``."""
    deadline = time.monotonic() + timeout
    messages: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        messages.append(recv_json(ws))
        if until(messages[-1]):
            return messages
    raise AssertionError(f"condition not met; got {messages}")


def is_status(status: str) -> Callable[[dict[str, Any]], bool]:
    def check(message: dict[str, Any]) -> bool:
        return message["messageType"] in ("JOB_STATUS_UPDATED", "CURRENT_JOB_STATUS") and (
            message["messagePayload"].get("status") == status
        )

    return check


def statuses(messages: list[dict[str, Any]]) -> list[str]:
    return [
        m["messagePayload"]["status"] for m in messages if m["messageType"] == "JOB_STATUS_UPDATED"
    ]


def log_lines(messages: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    for message in messages:
        if message["messageType"] == "RUNLOG_UPDATED":
            lines.extend(message["messagePayload"]["lines"])
    return lines


def wait_for_close(ws: websocket.WebSocket, timeout: float = 5.0) -> int | None:
    """Read (answering pings) until the server closes; the close code, None if aborted."""
    deadline = time.monotonic() + timeout
    ws.settimeout(timeout)
    while time.monotonic() < deadline:
        try:
            opcode, data = ws.recv_data(control_frame=True)
        except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
            return None
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return int(struct.unpack("!H", data[:2])[0]) if len(data) >= 2 else 1005
    raise AssertionError("the server did not close the socket")


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def assert_quiet(ws: websocket.WebSocket, seconds: float = 0.2) -> None:
    """Assert that no data frame arrives for ``seconds`` (control frames are answered)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        ws.settimeout(left)
        try:
            opcode, data = ws.recv_data(control_frame=True)
        except websocket.WebSocketTimeoutException:
            return
        assert opcode in (websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG), data


#: A sitecustomize that makes ``import NAME`` fail for each name in $HIDE_MODULES, as in an
#: install without that package (a test of our handling of a missing extra, not a mock).
HIDING_SITECUSTOMIZE = """
import os
import random
import sys

_HIDDEN = tuple(name for name in os.environ.get("HIDE_MODULES", "").split(",") if name)


class _HideModules:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in _HIDDEN:
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)", name=name)
        return None


sys.meta_path.insert(0, _HideModules())
"""


def env_without(directory: Path, *modules: str) -> dict[str, str]:
    """Environment for a subprocess in which ``modules`` cannot be imported."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(HIDING_SITECUSTOMIZE)
    path = os.pathsep.join(p for p in (str(directory), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "HIDE_MODULES": ",".join(modules)}


class CliEmulator:
    """``python -m airflow_insight.emulator --port 0 ...`` in a subprocess, stopped on exit."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "airflow_insight.emulator", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**(env or os.environ), "PYTHONUNBUFFERED": "1"},
        )
        assert self.process.stdout is not None
        first = self.process.stdout.readline().strip()
        prefix = "Insight emulator listening on "
        if not first.startswith(prefix):
            self.close()
            raise AssertionError(f"the emulator did not start: {first!r}")
        self.base_url = first.removeprefix(prefix)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def __enter__(self) -> CliEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def knapsack_lp(items: int, constraints: int, seed: int = 7) -> str:
    """A seeded multidimensional 0-1 knapsack in LP format (within the community licence).

    60 items x 8 constraints solves in well under a second; 250 x 20 keeps a single thread
    busy for minutes, with new incumbents early on (for interrupt and DELETE tests).
    """
    rng = random.Random(seed)
    weights = [[rng.randint(10, 100) for _ in range(items)] for _ in range(constraints)]
    profits = [rng.randint(10, 100) for _ in range(items)]
    lines = ["\\ seeded multidimensional knapsack", "Maximize"]
    lines.append(" profit: " + " + ".join(f"{p} x{j}" for j, p in enumerate(profits)))
    lines.append("Subject To")
    for i, row in enumerate(weights):
        terms = " + ".join(f"{w} x{j}" for j, w in enumerate(row))
        lines.append(f" capacity{i}: {terms} <= {sum(row) // 2}")
    lines += ["Binary", " " + " ".join(f"x{j}" for j in range(items)), "End"]
    return "\n".join(lines) + "\n"


Decide = Callable[[dict[str, Any]], dict[str, Any] | None]


def follow_answering(
    ws: websocket.WebSocket, decide: Decide, until: Callable[[dict[str, Any]], bool], timeout: float
) -> list[dict[str, Any]]:
    """Read messages until ``until``; answer each APP_MESSAGE with ``decide``'s appMessage.

    ``decide`` returns the ``appMessage`` object to answer with, or None to leave it unanswered.
    """
    deadline = time.monotonic() + timeout
    messages: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        ws.settimeout(max(deadline - time.monotonic(), 0.01))
        message = recv_json(ws)
        messages.append(message)
        if message["messageType"] == "APP_MESSAGE":
            body = decide(message)
            if body is not None:
                payload = {"appMessageId": message["messagePayload"]["appMessageId"]}
                send(
                    ws,
                    "APP_MESSAGE_RESPONSE",
                    {**payload, "appMessage": body},
                    computeJobId=message["computeJobId"],
                )
        if until(message):
            return messages
    raise AssertionError(f"condition not met; got {[m['messageType'] for m in messages]}")


def is_terminal_status(message: dict[str, Any]) -> bool:
    return message["messageType"] in ("JOB_STATUS_UPDATED", "CURRENT_JOB_STATUS") and message[
        "messagePayload"
    ].get("status") in ("COMPLETED", "FAILED", "CANCELLED", "DELETED")
