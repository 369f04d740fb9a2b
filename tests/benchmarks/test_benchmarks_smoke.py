"""Smoke test of the benchmark command: tiny sizes, every figure present; never about speed.

It runs ``python -m benchmarks.run --smoke --json <file>`` as users run the real thing (the
emulator, the measured clients and ``dag.test()`` all in child processes on 127.0.0.1) and checks
the JSON's shape: each figure is there, was measured (not ``error``/``skipped``), says how it was
measured and carries numbers. Whether a target was met is not asserted.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.run import FIGURE_IDS  # noqa: E402

#: Airflow runs (dag.test in child processes) dominate: about a minute and a half in all.
pytestmark = pytest.mark.timeout(600)


def _numbers(values: dict[str, object]) -> list[float]:
    return [float(v) for v in values.values() if isinstance(v, int | float)]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("bench") / "smoke.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--smoke", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "figure" in completed.stdout  # the table was printed
    document: dict[str, object] = json.loads(out.read_text())
    return document


def test_every_figure_is_present_once(report: dict[str, object]) -> None:
    figures = report["figures"]
    assert isinstance(figures, list)
    assert sorted(f["id"] for f in figures) == sorted(FIGURE_IDS)
    assert report["mode"] == "smoke"
    assert report["duration_seconds"] > 0


@pytest.mark.parametrize("figure_id", FIGURE_IDS)
def test_figure_was_measured_and_explained(report: dict[str, object], figure_id: str) -> None:
    (figure,) = [f for f in report["figures"] if f["id"] == figure_id]  # type: ignore[attr-defined]
    assert figure["status"] in ("pass", "fail", "info"), figure["note"]
    assert len(figure["how"]) > 40 and figure["target"]
    numbers = _numbers(figure["values"])
    assert numbers and all(math.isfinite(n) for n in numbers), figure["values"]


def test_no_lines_lost_or_duplicated_in_task_logs(report: dict[str, object]) -> None:
    # Correctness, not speed: every run-log line reached the task log exactly once.
    for figure in report["figures"]:  # type: ignore[attr-defined]
        if figure["id"].startswith("runlog_"):
            assert figure["values"]["lost"] == 0, figure
            assert figure["values"]["duplicated"] == 0, figure


def test_memory_bounds_prints_both_figures(tmp_path: Path) -> None:
    # The separate memory-bounds command, tiny: both figures measured, whatever their values.
    out = tmp_path / "bounds.json"
    sizes = ["--jobs", "1", "--lines", "3000", "--sink-pause", "0", "--runlogs", "20"]
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory_bounds", *sizes, "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    document = json.loads(out.read_text())
    flood, runlog = document["deferred_flood"], document["runlog_per_job"]
    assert "error" not in flood and "error" not in runlog, document
    assert flood["lines_live"] + flood["lines_left_to_resume"] == 3000
    assert flood["rss_peak_mb"] > 0 and runlog["bytes_per_job"] > 0
