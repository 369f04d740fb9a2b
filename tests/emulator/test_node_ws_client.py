"""The emulator's WebSocket handshake, proved against an independent client: Node's `ws` package.

FICO's documentation connects with `ws` (`perMessageDeflate: true`, an `Authorization` header)
and reads the `connection-id` handshake header. tests/node/ws_client.mjs does exactly that and
prints every message as one JSON line; this test drives the REST side with `requests`.
Skipped (with the reason) where `node`/`npm` is missing; CI has both.
"""

from __future__ import annotations

import io
import json
import os
import queue
import shutil
import subprocess
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_insight.emulator import Emulator, EmulatorConfig, JobScript

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
CLIENT = NODE_DIR / "ws_client.mjs"
PRODUCTION_PLAN = NODE_DIR.parents[1] / "example_dags" / "models" / "production_plan" / "problem.lp"
V2_JSON = "application/vnd.com.fico.xpress.insight.v2+json"
CLIENT_ID, SECRET = "node-client", "node-secret"
LINE_TEMPLATE = "node-check {job_id} line {n}"
LOG_LINES = 7
WAIT_SECONDS = 30.0

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="node and npm are needed to run the Node `ws` client (CI installs them)",
)


@pytest.fixture(scope="module")
def node_client() -> Path:
    """The client script, with `ws` installed from the lock file when it is not there yet."""
    if not (NODE_DIR / "node_modules" / "ws" / "package.json").exists():
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"npm ci failed in {NODE_DIR}:\n{done.stdout}\n{done.stderr}")
    return CLIENT


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    script = JobScript(
        name="node-check",
        queued_seconds=0.05,
        status_step_seconds=0.02,
        log_lines=LOG_LINES,
        lines_per_second=0.0,
        batch_size=3,
        line_template=LINE_TEMPLATE,
        completing_seconds=0.05,
    )
    config = EmulatorConfig(
        host="127.0.0.1", port=0, credentials={CLIENT_ID: SECRET}, default_script=script
    )
    with Emulator(config) as running:
        yield running


def mint_token(base_url: str) -> str:
    response = requests.post(
        f"{base_url}/api/authentication/token",
        data=json.dumps({"clientId": CLIENT_ID, "secret": SECRET, "maxAge": 300}),
        headers={"Accept": f"text/plain, {V2_JSON}", "Content-Type": V2_JSON},
        timeout=10,
    )
    response.raise_for_status()
    if response.headers.get("Content-Type", "").startswith("text/plain"):
        return response.text.strip()
    token = response.json()
    assert isinstance(token, str)
    return token


class NodeClient:
    """The running Node process; its stdout lines are parsed into events by a reader thread."""

    def __init__(self, script: Path, url: str, token: str, job_id: str) -> None:
        env = {**os.environ, "INSIGHT_TOKEN": token}
        self.process = subprocess.Popen(
            ["node", str(script), url, "--job-id", job_id, "--timeout-ms", "20000"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            self._queue.put(json.loads(line))
        self._queue.put(None)

    def next_event(self) -> dict[str, Any]:
        event = self._queue.get(timeout=WAIT_SECONDS)
        if event is None:
            pytest.fail(f"node client ended early: {self.lines} {self.stderr()}")
        return event

    def wait(self) -> int:
        return self.process.wait(timeout=WAIT_SECONDS)

    def stderr(self) -> str:
        return self.process.stderr.read() if self.process.stderr and not self.alive() else ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.alive():
            self.process.kill()
            self.process.wait(timeout=WAIT_SECONDS)


def submit(
    base_url: str, token: str, connection_id: str, request: dict[str, Any], payload: bytes | None
) -> requests.Response:
    files: dict[str, tuple[str | None, bytes, str]] = {
        "computeJobRequest": (None, json.dumps(request).encode(), V2_JSON),
    }
    if payload is not None:
        files["payload"] = ("payload.zip", payload, "application/zip")
    return requests.post(
        f"{base_url}/api/compute-jobs",
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": V2_JSON,
            "connection-id": connection_id,
        },
        files=files,
        timeout=10,
    )


def run_job(
    emulator: Emulator, script: Path, job_id: str, payload: bytes | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
    """Connect the Node client, submit a job on its connection-id, collect what it received.

    Returns the client's "open" event, the messages for the job, and the raw output lines.
    """
    token = mint_token(emulator.base_url)
    client = NodeClient(script, emulator.websocket_url, token, job_id)
    try:
        opened = client.next_event()
        assert opened["event"] == "open", client.lines
        request = {
            "id": job_id,
            "computeJobType": "SOLVER",
            "runLogMessages": True,
            "solver": {"action": "OPTIMIZE", "resultsToInclude": ["SOLUTION"]},
        }
        response = submit(emulator.base_url, token, opened["connectionId"], request, payload)
        assert response.status_code == 201, response.text
        assert client.wait() == 0, (client.lines, client.stderr())
    finally:
        client.stop()
    events = [json.loads(line) for line in client.lines]
    messages = [
        event["message"]
        for event in events
        if event["event"] == "message" and event["message"].get("computeJobId") == job_id
    ]
    return opened, messages, client.lines


def statuses(messages: list[dict[str, Any]]) -> list[str]:
    return [
        message["messagePayload"]["status"]
        for message in messages
        if message["messageType"] == "JOB_STATUS_UPDATED"
    ]


def run_log(messages: list[dict[str, Any]]) -> list[str]:
    """The run log reassembled from RUNLOG_UPDATED batches, checking their line numbers."""
    lines: list[str] = []
    for message in messages:
        if message["messageType"] != "RUNLOG_UPDATED":
            continue
        payload = message["messagePayload"]
        assert payload["startLine"] == len(lines)
        lines.extend(payload["lines"])
    return lines


def test_handshake_and_job_messages_over_node_ws(node_client: Path, emulator: Emulator) -> None:
    job_id = "node-ws-check-1"
    opened, messages, output = run_job(emulator, node_client, job_id)

    assert opened["connectionId"], "the 101 response carried no connection-id header"
    assert opened["permessageDeflate"] is True
    assert "permessage-deflate" in opened["extensions"]

    seen = statuses(messages)
    assert seen[0] == "QUEUED"
    assert seen[-1] == "COMPLETED"
    assert seen.index("EXECUTING") < seen.index("COMPLETING") < seen.index("COMPLETED")
    final = [m for m in messages if m["messageType"] == "JOB_STATUS_UPDATED"][-1]
    assert final["messagePayload"]["modelStatus"] == "OK"
    assert run_log(messages) == [LINE_TEMPLATE.format(job_id=job_id, n=n) for n in range(LOG_LINES)]
    assert json.loads(output[-1])["event"] in ("done", "close")


def test_real_solve_log_over_node_ws(node_client: Path, emulator: Emulator) -> None:
    pytest.importorskip("xpress", reason="the optional 'xpress' package is not installed")
    emulator.add_script("solve-*", JobScript(name="node-solve", lines_per_second=0.0, solve=True))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("problem.lp", PRODUCTION_PLAN.read_bytes())
    job_id = "solve-node-ws-check"

    opened, messages, _ = run_job(emulator, node_client, job_id, buffer.getvalue())

    assert opened["permessageDeflate"] is True
    assert statuses(messages)[-1] == "COMPLETED"
    log = run_log(messages)
    assert "Reading Problem problem" in log
    assert " *** Search completed ***" in log
    assert any(line.startswith("Final MIP objective") for line in log)
