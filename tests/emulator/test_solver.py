"""Real xpress solves through the emulator's solver module (no mocks: the optimizer runs)."""

from __future__ import annotations

import gzip
import json
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest

from airflow_insight.emulator import solver as solver_module
from airflow_insight.emulator.solver import SolveResult, SolverUnavailable, solve_payload
from emulator.support import zip_of

xpress = pytest.importorskip("xpress", reason="the optional 'xpress' package is not installed")

REPO = Path(__file__).resolve().parents[2]
PRODUCTION_PLAN = REPO / "example_dags" / "models" / "production_plan" / "problem.lp"
PRODUCTION_PLAN_PEAK = REPO / "example_dags" / "models" / "production_plan_peak" / "problem.mps"
INFEASIBLE = REPO / "tests" / "data" / "infeasible.lp"

# Known optimum of the shipped production plan (integer batches, so the value is exact).
PRODUCTION_PLAN_OPTIMUM = 12380.0


def make_zip(files: dict[str, bytes]) -> bytes:
    """A payload zip holding the given members."""
    return zip_of(dict(files))


def solve(
    files: dict[str, bytes], solver: dict[str, Any] | None = None
) -> tuple[SolveResult, list[str]]:
    """Solve a payload and return the result with every streamed log line."""
    lines: list[str] = []
    result = solve_payload(make_zip(files), solver, lines.append)
    return result, lines


def status_json(result: SolveResult) -> Any:
    return json.loads(result.result_files["solution-status.json"])


@pytest.fixture(scope="module")
def plan_solve() -> tuple[SolveResult, list[str]]:
    """One full solve of the shipped model with every result file requested."""
    return solve(
        {"problem.lp": PRODUCTION_PLAN.read_bytes()},
        {"resultsToInclude": ["SOLUTION", "BASIS", "ATTRIBUTES"]},
    )


def test_shipped_model_solves_to_optimality(plan_solve: tuple[SolveResult, list[str]]) -> None:
    result, _ = plan_solve
    assert result.model_status == "OK"
    assert result.solution_status == "Optimal"
    assert result.problem_name == "problem"
    assert status_json(result) == {"problem": "Optimal"}


def test_log_lines_are_the_optimizers_own(plan_solve: tuple[SolveResult, list[str]]) -> None:
    _, lines = plan_solve
    assert len(lines) > 50
    text = "\n".join(lines)
    for expected in (
        "Reading Problem problem",
        "FICO Xpress v",
        "Presolved problem has:",
        "Starting root cutting & heuristics",
        "Starting tree search.",
        "*** Search completed ***",
        "Final MIP objective",
        "Solution status: Optimal",
    ):
        assert expected in text
    # One callback call per line: multi-line optimizer messages are split.
    assert all("\n" not in line for line in lines)


def test_requested_result_files(plan_solve: tuple[SolveResult, list[str]]) -> None:
    result, _ = plan_solve
    assert set(result.result_files) == {
        "solution-status.json",
        "problem.slx",
        "problem.bas",
        "problem-attributes.json",
    }
    slx = result.result_files["problem.slx"].decode()
    assert slx.startswith("NAME")
    assert "make_widget_lineA_1" in slx
    assert result.result_files["problem.bas"].decode().startswith("NAME")

    attributes = json.loads(result.result_files["problem-attributes.json"])
    assert len(attributes) > 50
    for name, entry in attributes.items():
        assert entry["name"] == name
        assert isinstance(entry["key"], int) and entry["key"] > 0
    assert attributes["MIPOBJVAL"]["value"] == pytest.approx(PRODUCTION_PLAN_OPTIMUM)
    assert attributes["COLS"]["value"] == 60
    assert attributes["SOLSTATUS"]["value"] == int(xpress.SolStatus.OPTIMAL)


def test_only_solution_status_without_results_to_include() -> None:
    result, _ = solve({"problem.lp": PRODUCTION_PLAN.read_bytes()})
    assert set(result.result_files) == {"solution-status.json"}


def test_controls_reach_the_optimizer() -> None:
    result, lines = solve(
        {"problem.lp": PRODUCTION_PLAN.read_bytes()},
        {
            "controls": {
                "XPRS_MAXTIME": "-1800",  # a string, as in the current documentation
                "XPRS_MIPRELSTOP": 0.0002,  # a number, as in the 2020 documentation
                "XPRS_NO_SUCH_CONTROL": 1,
                "XPRS_THREADS": "1.5",
            }
        },
    )
    assert result.solution_status == "Optimal"
    # The optimizer itself lists the non-default controls it runs with.
    assert "MAXTIME = -1800" in lines
    assert "MIPRELSTOP = .0002" in lines
    assert "Warning: unknown solver control 'XPRS_NO_SUCH_CONTROL' ignored" in lines
    assert any(line.startswith("Warning: solver control 'XPRS_THREADS'") for line in lines)
    # Probing for the unknown name does not leak the solver's own complaint into the log.
    assert not any("?124" in line for line in lines)


def test_lp_iteration_limit_is_unfinished() -> None:
    result, lines = solve(
        {"problem.lp": PRODUCTION_PLAN.read_bytes()},
        {"problemType": "LP", "controls": {"XPRS_LPITERLIMIT": 2}},
    )
    assert "LPITERLIMIT = 2" in lines
    assert (result.solution_status, result.model_status) == ("Unfinished", "UNFINISHED")


def test_node_limit_without_incumbent_is_no_solution_found() -> None:
    result, lines = solve(
        {"problem.lp": PRODUCTION_PLAN.read_bytes()},
        {
            "controls": {
                "XPRS_MAXNODE": 0,
                "XPRS_HEUREMPHASIS": 0,
                "XPRS_CUTSTRATEGY": 0,
                "XPRS_THREADS": 1,
            }
        },
    )
    assert any("MAXNODE limit reached" in line for line in lines)
    assert (result.solution_status, result.model_status) == ("No solution found", "UNFINISHED")


@pytest.mark.parametrize(
    ("flag", "expected"),
    [("PRIMAL", "Primal solved problem"), ("BARRIER", "Barrier solved problem")],
)
def test_algorithm_flags(flag: str, expected: str) -> None:
    result, lines = solve(
        {"problem.lp": PRODUCTION_PLAN.read_bytes()},
        {"problemType": "LP", "flags": [flag, "NOT_A_FLAG"]},
    )
    assert result.solution_status == "Optimal"
    assert expected in lines
    assert "Warning: solver flag 'NOT_A_FLAG' is not supported and was ignored" in lines


def test_infeasible_model() -> None:
    result, lines = solve(
        {"infeasible.lp": INFEASIBLE.read_bytes()}, {"resultsToInclude": ["SOLUTION"]}
    )
    assert (result.model_status, result.solution_status) == ("INFEASIBLE", "Infeasible")
    assert status_json(result) == {"infeasible": "Infeasible"}
    assert any("infeasible" in line for line in lines if not line.startswith("Solution"))
    # There is no solution to write: a warning line, no file, no crash.
    assert "infeasible.slx" not in result.result_files
    assert any(line.startswith("Warning: could not write SOLUTION") for line in lines)


def test_iis_action_writes_the_iis() -> None:
    result, lines = solve(
        {"infeasible.lp": INFEASIBLE.read_bytes()},
        {"action": "IIS", "resultsToInclude": ["IIS", "SOLUTION"]},
    )
    assert (result.model_status, result.solution_status) == ("OK", "Infeasible")
    iis = result.result_files["infeasible-iis.lp"].decode()
    assert "at_least_ten" in iis and "at_most_five" in iis
    assert "Warning: resultsToInclude SOLUTION does not apply to action IIS" in lines


def test_gzipped_mps_in_a_subfolder() -> None:
    compressed = gzip.compress(PRODUCTION_PLAN_PEAK.read_bytes())
    result, lines = solve({"notes/readme.txt": b"not a model", "models/problem.mps.gz": compressed})
    assert "Reading Problem production_plan_peak" in lines
    assert (result.model_status, result.solution_status) == ("OK", "Optimal")
    assert status_json(result) == {"problem": "Optimal"}


def test_zip_without_a_model_is_an_error() -> None:
    result, lines = solve({"readme.txt": b"hello"})
    assert (result.model_status, result.solution_status) == ("ERROR", "Unsolved")
    assert status_json(result) == {}
    assert lines == [
        "Error: no LP or MPS model file (.lp, .mps, .lp.gz, .mps.gz) found in the payload"
    ]


def test_payload_that_is_not_a_zip_is_an_error() -> None:
    lines: list[str] = []
    result = solve_payload(b"definitely not a zip", None, lines.append)
    assert result.model_status == "ERROR"
    assert lines == ["Error: the payload is not a valid zip file"]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("broken.lp", b"Minimize\n obj: x +* y\nSubject To\n c1: x >= \nEnd\n"),
        ("broken.mps", b"this is not an mps file\n"),
    ],
)
def test_unreadable_model_is_an_error(name: str, content: bytes) -> None:
    result, lines = solve({name: content})
    assert (result.model_status, result.solution_status) == ("ERROR", "Unsolved")
    assert status_json(result) == {"broken": "Unsolved"}
    assert any(line.startswith(f"Error: could not read model file '{name}'") for line in lines)


def test_failing_log_consumer_does_not_stop_the_solve() -> None:
    calls = 0

    def explode(line: str) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("consumer broke")

    payload = make_zip({"problem.lp": PRODUCTION_PLAN.read_bytes()})
    result = solve_payload(payload, None, explode)
    assert result.solution_status == "Optimal"
    assert calls > 50


def test_concurrent_solves_keep_their_logs_apart() -> None:
    payloads = {
        "plan": make_zip({"problem.lp": PRODUCTION_PLAN.read_bytes()}),
        "peak": make_zip({"problem.mps": PRODUCTION_PLAN_PEAK.read_bytes()}),
        "infeasible": make_zip({"infeasible.lp": INFEASIBLE.read_bytes()}),
    }
    logs: dict[str, list[str]] = {name: [] for name in payloads}
    results: dict[str, SolveResult] = {}

    def run(name: str) -> None:
        results[name] = solve_payload(payloads[name], None, logs[name].append)

    threads = [threading.Thread(target=run, args=(name,)) for name in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)

    assert results["plan"].solution_status == "Optimal"
    assert results["peak"].solution_status == "Optimal"
    assert results["infeasible"].solution_status == "Infeasible"
    assert [line for line in logs["plan"] if line.startswith("Reading Problem")] == [
        "Reading Problem problem"
    ]
    assert [line for line in logs["peak"] if line.startswith("Reading Problem")] == [
        "Reading Problem production_plan_peak"
    ]
    assert [line for line in logs["infeasible"] if line.startswith("Reading Problem")] == [
        "Reading Problem infeasible"
    ]


def test_temporary_files_are_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result, _ = solve(
        {"problem.lp": PRODUCTION_PLAN.read_bytes()},
        {"resultsToInclude": ["SOLUTION", "BASIS", "SAVE"]},
    )
    assert "problem.svf" in result.result_files
    assert list(tmp_path.iterdir()) == []


def test_missing_xpress_raises_solver_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(solver_module, "_xpress_module", None)
    monkeypatch.setitem(sys.modules, "xpress", None)  # makes `import xpress` fail
    with pytest.raises(SolverUnavailable, match="not installed"):
        solve_payload(make_zip({"problem.lp": b""}), None, lambda line: None)
