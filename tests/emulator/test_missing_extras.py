"""Installs without an optional extra, in subprocesses where the package cannot be imported.

Without ``xpress`` the emulator never pretends to solve: a model payload is refused naming the
extra, unless simulated solves were asked for, and then every such job says SIMULATED. Without
``aiohttp`` (the ``emulator`` extra) the provider still imports and ``insight-emulator`` names
the extra to install.
"""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import requests

from emulator.support import (
    CliEmulator,
    auth,
    env_without,
    job_request,
    mint,
    submit,
    wait_until,
    zip_of,
)

TINY_LP = "Maximize\n obj: x + 2 y\nSubject To\n c1: x + y <= 4\nEnd\n"
SOLVER_EXTRA = 'pip install "airflow-insight[solver]"'


def _job(emulator: Any, token: str, job_id: str) -> dict[str, Any]:
    url = f"{emulator.base_url}/api/compute-jobs/{job_id}"
    document: dict[str, Any] = requests.get(url, headers=auth(token), timeout=5).json()
    return document


def test_model_payload_refused_without_xpress(tmp_path: Path) -> None:
    with CliEmulator(env=env_without(tmp_path, "xpress")) as emulator:
        token = mint(emulator)
        response = submit(
            emulator, token, job_request("lp-1"), payload=zip_of({"problem.lp": TINY_LP})
        )
        assert response.status_code == 422, response.text
        message = response.json()["error"]["innerError"]["message"]
        assert "xpress" in message and SOLVER_EXTRA in message and "--simulate-solves" in message
        assert (
            requests.get(
                f"{emulator.base_url}/api/compute-jobs/lp-1", headers=auth(token), timeout=5
            ).status_code
            == 404
        )


def test_simulated_solves_say_so_in_log_and_results(tmp_path: Path) -> None:
    env = env_without(tmp_path, "xpress")
    with CliEmulator("--simulate-solves", env=env) as emulator:
        token = mint(emulator)
        for job_id in ("sim-1", "sim-2"):
            payload = zip_of({"problem.lp": TINY_LP})
            assert submit(emulator, token, job_request(job_id), payload=payload).status_code == 201
        for job_id in ("sim-1", "sim-2"):
            wait_until(lambda j=job_id: _job(emulator, token, j)["status"] == "COMPLETED", 30)
            document = _job(emulator, token, job_id)
            log = requests.get(
                emulator.base_url + document["runLogUrl"], headers=auth(token, "text/plain")
            ).text.splitlines()
            assert "SIMULATED" in log[0] and "SIMULATED" in log[-1]
            results = requests.get(
                emulator.base_url + document["resultUrl"], headers=auth(token, "application/zip")
            ).content
            with zipfile.ZipFile(io.BytesIO(results)) as archive:
                assert "SIMULATED" in archive.read("SIMULATED.txt").decode()
                assert archive.read("solution-status.json") == b'{"%s": "Simulated"}' % (
                    job_id.encode()
                )


def test_cli_without_aiohttp_names_the_extra(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow_insight.emulator", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env_without(tmp_path, "aiohttp"),
    )
    assert result.returncode == 2
    assert 'pip install "airflow-insight[emulator]"' in result.stderr
    assert "Traceback" not in result.stderr


def test_provider_imports_without_aiohttp(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "import airflow_insight.hooks.insight, airflow_insight.operators.insight\n"
        "import airflow_insight.sensors.insight, airflow_insight.triggers.insight\n"
        "import airflow_insight.transport.async_driver, airflow_insight.transport.sync_driver\n"
        "import airflow_insight.provider_info\n"
        "import airflow_insight.emulator\n"  # the package itself imports without its extra
        "assert 'aiohttp' not in sys.modules, sorted(sys.modules)\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=env_without(tmp_path, "aiohttp"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"


def test_help_is_plain_text() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow_insight.emulator", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert "drop-socket:after=N" in result.stdout and "--simulate-solves" in result.stdout
    for markup in ("``", ":mod:", ":func:", ":meth:", "::\n"):
        assert markup not in result.stdout, markup
