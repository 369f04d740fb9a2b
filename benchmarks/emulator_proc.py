"""The emulator in its own process, driven over a JSON-lines pipe.

Benchmarks run the emulator in a child process so that its CPU and memory never count against
the client under test and the two do not share a GIL. The child records every job status change
with ``time.monotonic()`` (``CLOCK_MONOTONIC`` on Linux, one clock for every process on the
machine), so "the emulator sent the terminal status" and "the client returned" are read from the
same clock although they happen in different processes.

Child side: ``python -m benchmarks.emulator_proc '<EmulatorConfig fields as JSON>'``; it prints
``{"base_url": ...}`` and then answers one JSON command per stdin line (see :func:`_handle`).
Parent side: :class:`EmulatorProcess`.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import subprocess
import sys
import threading
import time
from types import TracebackType
from typing import Any

#: The loopback credentials every benchmark uses (the emulator's public demo pair).
CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-secret"


# --------------------------------------------------------------------------- child side


def _serve(config_json: str) -> None:
    import psutil

    from airflow_insight.emulator import Emulator, EmulatorConfig

    options = json.loads(config_json)
    gc_mode = options.pop("gc_mode", "default")
    options.setdefault("credentials", {CLIENT_ID: CLIENT_SECRET})
    if "default_script" in options:
        options["default_script"] = _script(options["default_script"])
    emulator = Emulator(EmulatorConfig(**options)).start()
    if gc_mode == "off":
        gc.disable()
    process = psutil.Process()
    print(json.dumps({"base_url": emulator.base_url, "pid": os.getpid()}), flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        if command.get("op") == "quit":
            break
        try:
            answer = _handle(emulator, process, command)
        except Exception as exc:  # report, keep serving: the parent decides what to do
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(answer), flush=True)
    emulator.stop()


def _script(fields: dict[str, Any]) -> Any:
    from airflow_insight.emulator import JobScript

    fields = dict(fields)
    for name in ("lines", "pre_executing_statuses"):
        if name in fields:
            fields[name] = tuple(fields[name])
    return JobScript(**fields)


def _handle(emulator: Any, process: Any, command: dict[str, Any]) -> dict[str, Any]:
    op = command["op"]
    if op == "rule":
        emulator.add_script(command["pattern"], _script(command["script"]))
        return {"ok": True}
    if op == "rules":
        for pattern, script in command["rules"]:
            emulator.add_script(pattern, _script(script))
        return {"ok": True}
    if op == "status_times":
        # First time each (job, status) was set, for jobs whose id starts with ``prefix``.
        prefix = command.get("prefix", "")
        times: dict[str, dict[str, float]] = {}
        for entry in emulator.record.of_kind("job_status"):
            job_id = entry.compute_job_id or ""
            if job_id.startswith(prefix):
                times.setdefault(job_id, {}).setdefault(entry.data["status"], entry.at)
        return {"times": times}
    if op == "requests":
        counts: dict[str, int] = {}
        since = float(command.get("since", 0.0))
        until = float(command.get("until", "inf"))
        for entry in emulator.record.of_kind("http_request"):
            if since <= entry.at < until:
                key = f"{entry.data['method']} {_path_kind(entry.data['path'])}"
                counts[key] = counts.get(key, 0) + 1
        return {"counts": counts}
    if op == "frames":
        since = float(command.get("since", 0.0))
        until = float(command.get("until", "inf"))
        kinds = ("ping", "pong", "ws_received", "update_token", "ws_open", "ws_close")
        return {
            "counts": {
                kind: sum(1 for e in emulator.record.of_kind(kind) if since <= e.at < until)
                for kind in kinds
            }
        }
    if op == "entries":
        # The raw timeline (for breakdowns): kind, time, job, and the request path or status.
        since = float(command.get("since", 0.0))
        return {
            "entries": [
                [e.kind, e.at, e.compute_job_id, e.data.get("path") or e.data.get("status")]
                for e in emulator.record.entries()
                if e.at >= since
            ]
        }
    if op == "pings":
        # Pings and pongs with their payloads, for pong delays (benchmarks.pong_delay).
        since = float(command.get("since", 0.0))
        return {
            "entries": [
                [e.kind, e.at, str(e.data.get("payload"))]
                for e in emulator.record.entries()
                if e.kind in ("ping", "pong") and e.at >= since
            ]
        }
    if op == "connections":
        return {"open": len(emulator.connection_ids())}
    if op == "usage":
        times_ = process.cpu_times()
        return {
            "cpu_seconds": times_.user + times_.system,
            "rss_mb": process.memory_info().rss / 2**20,
        }
    if op == "run_log":
        return {"lines": emulator.run_log(command["job_id"])}
    if op == "drop_sockets":
        return {"dropped": emulator.drop_sockets()}
    if op == "restart":
        emulator.restart(float(command.get("down_seconds", 1.0)))
        return {"ok": True}
    if op == "clear":
        emulator.record.clear()
        return {"ok": True}
    if op == "now":
        return {"now": time.monotonic()}
    raise ValueError(f"unknown op {op!r}")


def _path_kind(path: str) -> str:
    """Group request paths: job ids and scenario ids become placeholders."""
    parts = path.strip("/").split("/")
    if len(parts) >= 3 and parts[1] == "compute-jobs":
        parts[2] = "{id}"
    if len(parts) >= 3 and parts[1] == "scenarios":
        parts[2] = "{sid}"
    return "/" + "/".join(parts)


# --------------------------------------------------------------------------- parent side


class EmulatorProcess:
    """Start the emulator in a child process; send commands; stop it."""

    def __init__(self, **config: Any) -> None:
        self._config = config
        self._process: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()
        self.base_url = ""
        self.pid = 0

    def start(self) -> EmulatorProcess:
        """Start the child and wait until it listens."""
        config = dict(self._config)
        if "default_script" in config and dataclasses.is_dataclass(config["default_script"]):
            config["default_script"] = script_fields(config["default_script"])
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.emulator_proc", json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=_project_root(),
        )
        assert self._process.stdout is not None
        first = self._process.stdout.readline()
        if not first:
            raise RuntimeError("the emulator process did not start")
        hello = json.loads(first)
        self.base_url = hello["base_url"]
        self.pid = hello["pid"]
        return self

    def call(self, op: str, **arguments: Any) -> dict[str, Any]:
        """Send one command and return the answer."""
        process = self._process
        assert process is not None and process.stdin is not None and process.stdout is not None
        with self._lock:
            process.stdin.write(json.dumps({"op": op, **arguments}) + "\n")
            process.stdin.flush()
            answer: dict[str, Any] = json.loads(process.stdout.readline())
        if "error" in answer:
            raise RuntimeError(f"emulator command {op!r} failed: {answer['error']}")
        return answer

    def rule(self, pattern: str, script: Any) -> None:
        """Run jobs matching ``pattern`` with ``script`` (a JobScript or a dict of its fields)."""
        self.call("rule", pattern=pattern, script=script_fields(script))

    def rules(self, rules: list[tuple[str, Any]]) -> None:
        """Add many rules in one round trip."""
        self.call("rules", rules=[(p, script_fields(s)) for p, s in rules])

    def status_times(self, prefix: str = "") -> dict[str, dict[str, float]]:
        """``{job_id: {status: monotonic time it was first set}}``."""
        times: dict[str, dict[str, float]] = self.call("status_times", prefix=prefix)["times"]
        return times

    def port(self) -> int:
        """The TCP port served."""
        return int(self.base_url.rsplit(":", 1)[1].split("/", 1)[0])

    def stop(self) -> None:
        """Ask the child to stop; kill it if it does not."""
        process = self._process
        if process is None:
            return
        self._process = None
        try:
            assert process.stdin is not None
            process.stdin.write('{"op": "quit"}\n')
            process.stdin.flush()
            process.wait(timeout=15)
        except (OSError, subprocess.TimeoutExpired, ValueError):
            process.kill()
            process.wait(timeout=5)

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def script_fields(script: Any) -> dict[str, Any]:
    """A JobScript (or dict) as JSON-safe fields, without faults (benchmarks inject none)."""
    fields = dataclasses.asdict(script) if dataclasses.is_dataclass(script) else dict(script)
    fields.pop("faults", None)
    return fields


def _project_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


if __name__ == "__main__":
    _serve(sys.argv[1])
