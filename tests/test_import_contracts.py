"""Each layer rule in .importlinter is real: a deliberate bad import breaks exactly its contract.

The package is copied to a temporary directory, one module gets one forbidden import, and
``lint-imports`` runs against the copy (first on ``PYTHONPATH``, so it shadows the installed
package). An untouched copy keeps every contract, so a failure below is the bad import's doing.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
LINT_IMPORTS = pathlib.Path(sys.executable).with_name("lint-imports")

#: (module to edit, the bad import, the contract that must break)
BAD_IMPORTS = [
    ("protocol/follower.py", "import time", "protocol core does no I/O"),
    ("protocol/runlog.py", "import socket", "protocol core does no I/O"),
    ("protocol/jobs.py", "import asyncio", "protocol core does no I/O"),
    ("protocol/session.py", "import threading", "protocol core does no I/O"),
    ("protocol/calls.py", "import random", "protocol core does no I/O"),
    ("protocol/tokens.py", "import ssl", "protocol core does no I/O"),
    ("protocol/events.py", "import airflow_insight.progress", "core does not import the progress"),
    (
        "protocol/request.py",
        "from airflow_insight.progress import options",
        "core does not import the progress",
    ),
    ("progress/handler.py", "import time", "protocol core does no I/O"),
    ("progress/series.py", "import airflow", "Nothing below the hook imports Airflow"),
    ("emulator/record.py", "import requests", "emulator imports none of the client"),
    ("emulator/record.py", "import websockets", "emulator imports none of the client"),
    ("emulator/record.py", "import websocket", "emulator imports none of the client"),
    ("emulator/hub.py", "import airflow_insight.emulator.connections", "emulator's rooms"),
    ("emulator/sockets.py", "import airflow_insight.emulator.hub", "emulator's rooms"),
    ("emulator/client_messages.py", "from aiohttp import web", "import no aiohttp"),
    ("emulator/hub.py", "import airflow_insight.emulator.error_bodies", "import no aiohttp"),
    ("operators/insight.py", "import airflow_insight.transport.rest", "only through the hook"),
    ("sensors/insight.py", "import airflow_insight.transport.rest", "only through the hook"),
    ("triggers/insight.py", "import airflow_insight.transport.socket_hub", "only through the hook"),
    ("triggers/watermark.py", "import requests", "only through the hook"),
    (
        "operators/insight.py",
        "from airflow.sdk import BaseOperator",
        "only through airflow_insight.compat",
    ),
    ("triggers/payload.py", "import airflow.triggers.base", "only through airflow_insight.compat"),
    ("hooks/task_state.py", "from airflow.sdk import conf", "only through airflow_insight.compat"),
    ("links.py", "import airflow", "only through airflow_insight.compat"),
]


def _lint_copy(tmp_path: pathlib.Path, edit: tuple[str, str] | None) -> str:
    shutil.copytree(
        ROOT / "airflow_insight",
        tmp_path / "airflow_insight",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    if edit is not None:
        module, line = edit
        path = tmp_path / "airflow_insight" / module
        text = path.read_text(encoding="utf-8")
        # After the __future__ import (which must stay first), so the module still compiles.
        head, marker, rest = text.partition("from __future__ import annotations\n")
        path.write_text(f"{head}{marker}{line}  # deliberately bad\n{rest}", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    completed = subprocess.run(
        [str(LINT_IMPORTS), "--config", str(tmp_path / ".importlinter"), "--no-cache"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return f"rc={completed.returncode}\n{completed.stdout}{completed.stderr}"


def test_an_untouched_copy_keeps_every_contract(tmp_path: pathlib.Path) -> None:
    report = _lint_copy(tmp_path, None)
    assert report.startswith("rc=0"), report[-2000:]
    assert "BROKEN" not in report


@pytest.mark.parametrize(("module", "line", "contract"), BAD_IMPORTS)
def test_a_bad_import_breaks_its_contract(
    tmp_path: pathlib.Path, module: str, line: str, contract: str
) -> None:
    report = _lint_copy(tmp_path, (module, line))
    assert not report.startswith("rc=0"), f"{line} in {module} went unnoticed"
    assert _verdict(report, contract) == "BROKEN", report[-2000:]


def _verdict(report: str, contract: str) -> str:
    """KEPT or BROKEN for the contract whose name contains ``contract`` (names may wrap)."""
    text = " ".join(report.split())
    start = text.index(contract)
    after = {word: text.find(f" {word}", start) for word in ("KEPT", "BROKEN")}
    found = {word: at for word, at in after.items() if at >= 0}
    return min(found, key=lambda word: found[word])
