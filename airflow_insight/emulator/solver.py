"""Real SOLVER-job solves for the emulator, with FICO's optional ``xpress`` package.

The emulator hands over the job's payload zip and the ``solver`` object of its
``ComputeJobRequest`` (protocol §B3.3.1); this module finds the LP/MPS model in the zip, applies
the request's controls, solves it, streams every optimizer log line to a callback as it is
produced, and returns the result files of a SOLVER job (protocol §B3.6).

The protocol leaves modelStatus for SOLVER jobs open: the job COMPLETES in every case and the
modelStatus names what the solve produced (``OK`` only for a usable solution, or a found IIS);
the full table is in docs/design.md#the-emulators-solve-outcomes.

The problem name is the model file's name without its extension (``MyProblem.mps`` gives
``MyProblem``), which names the result files exactly as §B3.6 shows (``MyProblem.slx``).

With a :class:`~airflow_insight.emulator.callbacks.SolveSession`, the callbacks the request lists
pause the solve for an ``APP_MESSAGE`` round trip each (see :mod:`.callbacks`), and the session
can interrupt the solve from another thread (a DELETE).
"""

from __future__ import annotations

import gzip
import importlib
import io
import json
import logging
import math
import tempfile
import threading
import warnings
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any

from airflow_insight.emulator.callbacks import (
    INTERRUPTED_LINE,
    STOPPED_BY_CLIENT,
    AppAnswer,
    SolveSession,
    requested_callbacks,
)

__all__ = [
    "MISSING_SOLVER",
    "SOLUTION_STATUS_FILE",
    "SolveResult",
    "SolverUnavailable",
    "solve_payload",
    "solver_missing_reason",
]

_log = logging.getLogger(__name__)

SOLUTION_STATUS_FILE = "solution-status.json"

# A model larger than this is refused before it is extracted: the community licence caps models
# at 5,000 rows/columns anyway, and a zip bomb must not fill the disk.
_MAX_MODEL_BYTES = 64 * 1024 * 1024

_MODEL_SUFFIXES = (".lp", ".mps", ".lp.gz", ".mps.gz")

_OPTIMAL = "Optimal"
_SOLUTION_AVAILABLE = "Solution available"
_NO_SOLUTION_FOUND = "No solution found"
_INFEASIBLE = "Infeasible"
_UNBOUNDED = "Unbounded"
_UNFINISHED = "Unfinished"
_UNSOLVED = "Unsolved"

_MODEL_STATUS_BY_SOLUTION_STATUS: Mapping[str, str] = {
    _OPTIMAL: "OK",
    _SOLUTION_AVAILABLE: "OK",
    _INFEASIBLE: "INFEASIBLE",
    _UNBOUNDED: "UNBOUNDED",
    _NO_SOLUTION_FOUND: "UNFINISHED",
    _UNFINISHED: "UNFINISHED",
    _UNSOLVED: "ERROR",
}
_ERROR = "ERROR"

# Request flags -> xpress lpOptimize/mipOptimize algorithm letters.
_ALGORITHM_FLAGS: Mapping[str, str] = {"DUAL": "d", "PRIMAL": "p", "BARRIER": "b", "NETWORK": "n"}
# xpress message types: 1 information, 3 warning, 4 error (negative: flush request).
_ERROR_MESSAGE = 4
_KNOWN_RESULTS = frozenset({"SOLUTION", "BASIS", "ATTRIBUTES", "SAVE", "IIS"})

_init_lock = threading.Lock()
_xpress_module: ModuleType | None = None
_import_problem: list[str | None] = []

#: What a user whose install cannot solve is told (the extra brings xpress).
MISSING_SOLVER = (
    "the 'xpress' package is not installed, so the emulator cannot solve the model in this "
    'payload; install the solver extra: pip install "airflow-insight[solver]" (or start the '
    "emulator with --simulate-solves / EmulatorConfig(simulate_solves=True) for canned runs "
    "labelled SIMULATED)"
)


def solver_missing_reason() -> str | None:
    """Why this process cannot solve (xpress does not import), or None; checked once."""
    with _init_lock:
        if not _import_problem:
            try:
                importlib.import_module("xpress")
            except ImportError as exc:
                _log.info("xpress cannot be imported: %s", exc)
                _import_problem.append(MISSING_SOLVER)
            else:
                _import_problem.append(None)
        return _import_problem[0]


class SolverUnavailable(RuntimeError):
    """The ``xpress`` package is not installed or its licence could not be initialised."""


@dataclass(frozen=True)
class SolveResult:
    """Outcome of one solve: statuses and the files of the job's results zip."""

    model_status: str
    solution_status: str
    problem_name: str
    result_files: dict[str, bytes]
    #: Why the solve stopped early (``callbacks.STOPPED_BY_*``), None when it ran its course.
    stopped_by: str | None = None


@dataclass(frozen=True)
class _Request:
    """The parts of a ComputeJobRequest ``solver`` object this module acts on."""

    action: str
    problem_type: str | None
    algorithm: str
    controls: Mapping[str, Any]
    results: tuple[str, ...]
    ignored: tuple[str, ...]
    callbacks: tuple[str, ...] = ()


def solve_payload(
    payload_zip: bytes,
    solver: Mapping[str, Any] | None,
    on_log_line: Callable[[str], None],
    session: SolveSession | None = None,
) -> SolveResult:
    """Solve the first LP/MPS model in ``payload_zip`` as a SOLVER job would.

    Every optimizer log line goes to ``on_log_line`` (one call per line, in order, never
    concurrently) while the solve runs. Problems with the payload or the model are returned as
    an error result, never raised. Raises :class:`SolverUnavailable` when ``xpress`` is missing.
    ``session`` (optional) carries the callbacks to send and can interrupt the solve.
    """
    xp = _load_xpress()
    emit = _serialised(on_log_line)
    request = _parse_request(solver)
    session = session or SolveSession((), lambda _: None, lambda _: None, 0.0)
    for warning in request.ignored:
        emit(f"Warning: {warning}")
    with tempfile.TemporaryDirectory(prefix="insight-solve-") as tmp:
        located = _extract_model(payload_zip, Path(tmp))
        if isinstance(located, str):
            emit(f"Error: {located}")
            return _error_result("", located)
        return _solve_file(xp, located, request, emit, session)


def _load_xpress() -> ModuleType:
    """Import and initialise xpress once per process; the lock makes the first use thread-safe."""
    global _xpress_module
    with _init_lock:
        if _xpress_module is not None:
            return _xpress_module
        try:
            # By name, so the type checker never depends on whether the extra is installed.
            xpress = importlib.import_module("xpress")
        except ImportError as exc:
            raise SolverUnavailable(MISSING_SOLVER) from exc
        try:
            # The community licence announces itself with a LicenseWarning on first init; the
            # emulator has no use for it, and it must not reach a test's or a DAG's output.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                xpress.init()
        except Exception as exc:  # xpress raises its own error types on licence problems
            raise SolverUnavailable(f"The xpress licence could not be initialised: {exc}") from exc
        _xpress_module = xpress
        return xpress


def _serialised(on_log_line: Callable[[str], None]) -> Callable[[str], None]:
    """Wrap the caller's callback so lines arrive one at a time (MIP threads may log)."""
    lock = threading.Lock()

    def emit(line: str) -> None:
        with lock:
            try:
                on_log_line(line)
            except Exception:
                # A failing consumer must not abort the optimizer mid-solve.
                _log.exception("on_log_line callback failed; continuing the solve")

    return emit


def _parse_request(solver: Mapping[str, Any] | None) -> _Request:
    """Read the solver object liberally (enum values in any case, missing fields defaulted)."""
    solver = solver or {}
    ignored: list[str] = []
    action = str(solver.get("action") or "OPTIMIZE").upper()
    if action not in ("OPTIMIZE", "IIS"):
        ignored.append(f"solver action {action!r} is not supported; running OPTIMIZE")
        action = "OPTIMIZE"
    problem_type = solver.get("problemType")
    problem_type = str(problem_type).upper() if problem_type else None
    if problem_type not in (None, "LP", "MIP"):
        ignored.append(f"problemType {problem_type!r} is not supported; letting the solver decide")
        problem_type = None
    algorithm = ""
    for flag in _string_list(solver.get("flags")):
        letter = _ALGORITHM_FLAGS.get(flag.upper())
        if letter is None:
            ignored.append(f"solver flag {flag!r} is not supported and was ignored")
        elif letter not in algorithm:
            algorithm += letter
    results: list[str] = []
    for item in _string_list(solver.get("resultsToInclude") or solver.get("includeInResults")):
        name = item.upper()
        if name not in _KNOWN_RESULTS:
            ignored.append(f"resultsToInclude value {item!r} is not supported and was ignored")
        elif name not in results:
            results.append(name)
    controls = solver.get("controls") or {}
    if not isinstance(controls, Mapping):
        ignored.append("solver controls are not a JSON object and were ignored")
        controls = {}
    callbacks, unknown = requested_callbacks(solver)
    ignored.extend(unknown)
    return _Request(
        action, problem_type, algorithm, controls, tuple(results), tuple(ignored), callbacks
    )


def _string_list(value: Any) -> list[str]:
    """A JSON array of strings, tolerating null and a single string."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable):
        return [str(item) for item in value]
    return [str(value)]


def _extract_model(payload_zip: bytes, directory: Path) -> Path | str:
    """Extract the first model file of the zip; return its path, or an error message."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(payload_zip))
    except zipfile.BadZipFile:
        return "the payload is not a valid zip file"
    with archive:
        member = next((info for info in archive.infolist() if _is_model(info)), None)
        if member is None:
            return "no LP or MPS model file (.lp, .mps, .lp.gz, .mps.gz) found in the payload"
        if member.file_size > _MAX_MODEL_BYTES:
            return f"model file {member.filename!r} is larger than {_MAX_MODEL_BYTES} bytes"
        # Only the base name is used, so a crafted member path cannot escape the temp dir.
        name = PurePosixPath(member.filename).name
        try:
            data = archive.read(member)
            if name.lower().endswith(".gz"):
                data = _gunzip(data)
                name = name[: -len(".gz")]
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            return f"model file {member.filename!r} could not be extracted: {exc}"
    path = directory / name
    path.write_bytes(data)
    return path


def _is_model(info: zipfile.ZipInfo) -> bool:
    """A model file, not a directory or macOS resource-fork noise."""
    name = info.filename
    if info.is_dir() or name.startswith("__MACOSX/"):
        return False
    return name.lower().endswith(_MODEL_SUFFIXES)


def _gunzip(data: bytes) -> bytes:
    """Decompress with the same size cap as the zip member."""
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
        out = stream.read(_MAX_MODEL_BYTES + 1)
    if len(out) > _MAX_MODEL_BYTES:
        raise ValueError(f"decompressed model is larger than {_MAX_MODEL_BYTES} bytes")
    return out


def _solve_file(
    xp: ModuleType,
    model: Path,
    request: _Request,
    emit: Callable[[str], None],
    session: SolveSession,
) -> SolveResult:
    """Read, configure, solve and collect the results of one model file."""
    problem_name = model.name.rsplit(".", 1)[0]
    prob = xp.problem()
    # Lines go only through the callback, never to this process's stdout.
    prob.setOutputEnabled(False)
    sink = _MessageSink(emit)
    prob.addMessageCallback(sink)
    problem = _read_model(prob, model, sink)
    if problem is not None:
        emit(f"Error: could not read model file {model.name!r}: {problem}")
        return _error_result(problem_name, "unreadable model")
    _apply_controls(prob, request.controls, sink, emit)
    _register_callbacks(prob, request, session, problem_name, sink, emit)
    session.attach(prob)
    if session.stopped_by is not None:  # deleted before the solve began
        return _error_result(problem_name, "stopped before the solve", session.stopped_by)
    try:
        if request.action == "IIS":
            solution_status, model_status = _run_iis(xp, prob, emit)
        else:
            solution_status = _run_optimize(xp, prob, request)
            model_status = _MODEL_STATUS_BY_SOLUTION_STATUS[solution_status]
    except Exception as exc:  # a solver error (licence size limit, numerical failure, ...)
        emit(f"Error: the solve failed: {exc}")
        return _error_result(problem_name, "solver error", session.stopped_by)
    if session.stopped_by == STOPPED_BY_CLIENT:
        emit(INTERRUPTED_LINE)
    emit(f"Solution status: {solution_status}")
    files = _collect_results(prob, problem_name, model.parent, request, sink, emit)
    files[SOLUTION_STATUS_FILE] = _solution_status_json(problem_name, solution_status)
    return SolveResult(model_status, solution_status, problem_name, files, session.stopped_by)


def _read_model(prob: Any, model: Path, sink: _MessageSink) -> str | None:
    """Read the model; return why it is unusable, or None.

    The reader skips sections it cannot parse with an error message and carries on, so a file
    that is not a model at all reads as an empty problem: read errors and a problem without
    columns both count as an unreadable model.
    """
    try:
        prob.readProb(str(model))
    except Exception as exc:  # xpress.SolverError / ModelError carry the reader's message
        return str(exc)
    if sink.errors:
        return "the reader reported errors (see the lines above)"
    if int(prob.attributes.cols) == 0:
        return "the file defines no variables"
    return None


class _MessageSink:
    """The xpress message callback: forwards each line of each optimizer message.

    While ``muted`` is set (name lookups that probe for unknown controls or attributes), the
    solver's own "?124 Error: Invalid parameter" complaints are dropped: they are our probing,
    not the job's log. Every solve has its own sink, so muting never affects another job.
    """

    def __init__(self, emit: Callable[[str], None]) -> None:
        self._emit = emit
        self.muted = False
        self.errors = 0

    def __call__(self, prob: Any, data: Any, message: str | None, message_type: int) -> None:
        # A negative type with no text only asks to flush buffers: there is nothing to forward.
        if message is None or self.muted:
            return
        if message_type == _ERROR_MESSAGE:
            self.errors += 1
        # One optimizer message can hold several lines ("Starting tree search.\n...").
        for line in message.split("\n"):
            self._emit(line)


def _apply_controls(
    prob: Any, controls: Mapping[str, Any], sink: _MessageSink, emit: Callable[[str], None]
) -> None:
    """Set each control by name; anything the solver rejects becomes a warning line."""
    for name, value in controls.items():
        sink.muted = True
        try:
            control_id, kind = _control_info(prob, str(name))
        except Exception:
            emit(f"Warning: unknown solver control {name!r} ignored")
            continue
        finally:
            sink.muted = False
        try:
            prob.setControl(control_id, _coerce(value, kind))
        except Exception as exc:
            emit(f"Warning: solver control {name!r} = {value!r} ignored: {exc}")
            continue
        emit(f"Control {name} set to {value}")


def _control_info(prob: Any, name: str) -> tuple[int | str, str]:
    """Resolve a control to (id or name, type name); raise when the solver does not know it.

    Optimizer controls resolve to their numeric id, with or without the ``XPRS_`` prefix.
    Controls of other components (``XSLP_*``, ``XKTR_*``) have no Optimizer id; the Python API
    still knows them by their full name, and their current value tells their type.
    """
    candidates = [name]
    if name.upper().startswith("XPRS_"):
        candidates.append(name[len("XPRS_") :])
    for candidate in candidates:
        try:
            control_id, kind = prob.getControlInfo(candidate)
        except Exception:
            continue
        if control_id:
            return int(control_id), str(kind.name)
    current = prob.getControl(name.lower())
    kinds = {bool: "INT", int: "INT", float: "DOUBLE", str: "STRING"}
    if type(current) not in kinds:
        raise KeyError(name)
    return name.lower(), kinds[type(current)]


def _coerce(value: Any, kind: str) -> Any:
    """Convert a request value (number or string, protocol §B3.3.1) to the control's type."""
    if kind == "STRING":
        return str(value)
    if kind in ("INT", "INT64"):
        number = float(value)
        if not number.is_integer():
            raise ValueError(f"{value!r} is not an integer")
        return int(number)
    if kind == "DOUBLE":
        return float(value)
    raise ValueError(f"unsupported control type {kind}")


def _run_optimize(xp: ModuleType, prob: Any, request: _Request) -> str:
    """Optimize as the request asks and map the result to a solution-status string."""
    is_mip = _has_entities(prob)
    if request.problem_type == "LP" or (request.problem_type is None and not is_mip):
        prob.lpOptimize(request.algorithm)
        is_mip = False
    elif request.problem_type == "MIP" or request.algorithm:
        prob.mipOptimize(request.algorithm)
    else:
        prob.optimize()
    return _solution_status(
        xp,
        int(prob.attributes.solvestatus),
        int(prob.attributes.solstatus),
        is_mip,
    )


def _has_entities(prob: Any) -> bool:
    """Whether the problem has MIP entities (integer/binary columns, SOS sets)."""
    return bool(int(prob.attributes.mipents) or int(prob.attributes.sets))


def _solution_status(xp: ModuleType, solve_status: int, sol_status: int, is_mip: bool) -> str:
    """Map xpress SOLVESTATUS/SOLSTATUS to the solution-status.json vocabulary."""
    by_solution = {
        int(xp.SolStatus.OPTIMAL): _OPTIMAL,
        int(xp.SolStatus.FEASIBLE): _SOLUTION_AVAILABLE,
        int(xp.SolStatus.INFEASIBLE): _INFEASIBLE,
        int(xp.SolStatus.UNBOUNDED): _UNBOUNDED,
    }
    if sol_status in by_solution:
        return by_solution[sol_status]
    # No solution at all: say why, as far as xpress tells us.
    if solve_status in (int(xp.SolveStatus.STOPPED), int(xp.SolveStatus.COMPLETED)):
        return _NO_SOLUTION_FOUND if is_mip else _UNFINISHED
    return _UNSOLVED


def _run_iis(xp: ModuleType, prob: Any, emit: Callable[[str], None]) -> tuple[str, str]:
    """Search for one IIS (mode 1: emphasise a simple IIS); return (solution, model) status."""
    outcome = int(prob.firstIIS(1))
    if outcome == 0:
        emit(f"IIS search found {int(prob.attributes.numiis)} irreducible infeasible set(s)")
        return _INFEASIBLE, "OK"
    if outcome == 1:
        emit("IIS search: the problem is feasible, so it has no IIS")
        return _UNSOLVED, "OK"
    if outcome == 3:
        emit("IIS search was interrupted before it finished")
        return _UNFINISHED, "UNFINISHED"
    emit("IIS search failed")
    return _UNSOLVED, _ERROR


def _collect_results(
    prob: Any,
    problem_name: str,
    directory: Path,
    request: _Request,
    sink: _MessageSink,
    emit: Callable[[str], None],
) -> dict[str, bytes]:
    """Write the requested result files; one that cannot be written becomes a warning line."""
    writers: dict[str, tuple[str, Callable[[Path], object]]] = {
        "SOLUTION": (f"{problem_name}.slx", lambda path: prob.writeSlxSol(str(path), "v")),
        "BASIS": (f"{problem_name}.bas", lambda path: prob.writeBasis(str(path), "v")),
        "ATTRIBUTES": (
            f"{problem_name}-attributes.json",
            lambda path: path.write_bytes(_attributes_json(prob, sink)),
        ),
        # Our choice of name: the docs do not say how the IIS file is called.
        "IIS": (f"{problem_name}-iis.lp", lambda path: _write_iis(prob, path)),
        # saveAs appends ".svf" itself; it must run last as it ends the optimization run.
        "SAVE": (f"{problem_name}.svf", lambda path: prob.saveAs(str(path.with_suffix("")))),
    }
    files: dict[str, bytes] = {}
    out = directory / "results"
    out.mkdir()
    for kind in sorted(request.results, key=lambda item: item == "SAVE"):
        if not _applies(kind, request.action):
            emit(f"Warning: resultsToInclude {kind} does not apply to action {request.action}")
            continue
        file_name, write = writers[kind]
        path = out / file_name
        try:
            write(path)
            files[file_name] = path.read_bytes()
        except Exception as exc:
            emit(f"Warning: could not write {kind} result {file_name}: {exc}")
    return files


def _applies(result: str, action: str) -> bool:
    """SOLUTION goes with OPTIMIZE only and IIS with IIS only (protocol §B3.3.1)."""
    if result == "SOLUTION":
        return action == "OPTIMIZE"
    if result == "IIS":
        return action == "IIS"
    return True


def _write_iis(prob: Any, path: Path) -> None:
    """Write the first IIS as an LP file (fails when no IIS was found)."""
    if int(prob.attributes.numiis) < 1:
        raise ValueError("no IIS was found")
    prob.writeIIS(1, 0, str(path.with_suffix("")), "l")
    if not path.exists():
        # Some versions append ".lp" to the given name, others keep it verbatim.
        path.with_suffix("").rename(path)


def _attributes_json(prob: Any, sink: _MessageSink) -> bytes:
    """Optimizer attributes, shaped ``{"NAME": {"key": id, "name": "NAME", "value": v}}``.

    The key is the attribute's id in the Optimizer library. Attributes of other solver
    components (the SLP/NLP ones) have no Optimizer id and are left out.
    """
    attributes = _attributes(prob, _attribute_keys(prob, sink))
    return json.dumps(attributes, indent=2, allow_nan=False).encode("utf-8")


def _attribute_keys(prob: Any, sink: _MessageSink) -> dict[str, int]:
    """Attribute name (upper case) -> its Optimizer id, for the attributes that have one."""
    keys: dict[str, int] = {}
    sink.muted = True
    try:
        for name in prob.getAttrib():
            upper = str(name).upper()
            try:
                key = int(prob.getAttribInfo(upper)[0])
            except Exception:
                continue
            if key:
                keys[upper] = key
    finally:
        sink.muted = False
    return keys


def _attributes(prob: Any, keys: Mapping[str, int]) -> dict[str, dict[str, Any]]:
    """The current attributes as ``{"NAME": {"key": id, "name": "NAME", "value": v}}``."""
    attributes: dict[str, dict[str, Any]] = {}
    for name, value in sorted(prob.getAttrib().items(), key=lambda item: str(item[0])):
        upper = str(name).upper()
        if upper in keys:
            attributes[upper] = {"key": keys[upper], "name": upper, "value": _json_value(value)}
    return attributes


def _json_value(value: Any) -> Any:
    """Plain JSON for attribute values: enums become ints, non-finite floats strings."""
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


def _solution_status_json(problem_name: str, solution_status: str) -> bytes:
    """The always-present ``solution-status.json`` (empty object when no model was found)."""
    content = {problem_name: solution_status} if problem_name else {}
    return json.dumps(content).encode("utf-8")


def _error_result(problem_name: str, reason: str, stopped_by: str | None = None) -> SolveResult:
    """A job whose model could not be solved at all: modelStatus ERROR, solution Unsolved."""
    _log.debug("solve ended without a solve: %s", reason)
    return SolveResult(
        model_status=_ERROR,
        solution_status=_UNSOLVED,
        problem_name=problem_name,
        result_files={SOLUTION_STATUS_FILE: _solution_status_json(problem_name, _UNSOLVED)},
        stopped_by=stopped_by,
    )


# --------------------------------------------------------------------------- callbacks

#: Callback name -> the xpress problem method that registers it.
_CALLBACK_REGISTRARS: Mapping[str, str] = {
    "GAPNOTIFY": "addGapNotifyCallback",
    "INTSOL": "addIntsolCallback",
    "GLOBALLOG": "addMiplogCallback",
    "LPLOG": "addLplogCallback",
    "BARLOG": "addBarlogCallback",
    "CUTLOG": "addCutlogCallback",
}
#: The controls a GAPNOTIFY callback needs (one of them) and may set again after it fired.
_GAP_TARGETS = ("MIPRELGAPNOTIFY", "MIPABSGAPNOTIFY", "MIPABSGAPNOTIFYOBJ", "MIPABSGAPNOTIFYBOUND")


def _register_callbacks(
    prob: Any,
    request: _Request,
    session: SolveSession,
    problem_name: str,
    sink: _MessageSink,
    emit: Callable[[str], None],
) -> None:
    """Register one xpress callback per requested name; each asks the session and obeys."""
    if not request.callbacks:
        return
    keys = _attribute_keys(prob, sink)
    names = _column_names(prob, sink)
    if "GAPNOTIFY" in request.callbacks and not _gap_target_set(request.controls):
        emit(
            "Warning: GAPNOTIFY needs a gap target (XPRS_MIPRELGAPNOTIFY or another "
            "*GAPNOTIFY* control) in the job's controls; without one it never fires"
        )
    for kind in request.callbacks:
        callback = _callback(kind, session, problem_name, keys, names, sink, emit)
        getattr(prob, _CALLBACK_REGISTRARS[kind])(callback)
    emit(f"Emulator: solver callbacks enabled: {', '.join(request.callbacks)}")


def _gap_target_set(controls: Mapping[str, Any]) -> bool:
    wanted = {f"XPRS_{name}" for name in _GAP_TARGETS} | set(_GAP_TARGETS)
    return any(str(name).upper() in wanted for name in controls)


def _column_names(prob: Any, sink: _MessageSink) -> list[str]:
    """The columns' names before the solve (the incumbent file names its values by them)."""
    cols = int(prob.attributes.cols)
    sink.muted = True
    try:
        return [str(name) for name in prob.getNameList(2, 0, cols - 1)] if cols else []
    except Exception:
        return [f"C{index}" for index in range(cols)]
    finally:
        sink.muted = False


def _callback(
    kind: str,
    session: SolveSession,
    problem_name: str,
    keys: Mapping[str, int],
    names: list[str],
    sink: _MessageSink,
    emit: Callable[[str], None],
) -> Callable[[Any, Any], Any]:
    """The xpress callback for ``kind``: one APP_MESSAGE round trip, then go on or stop.

    An interrupt is ``cbprob.interrupt()`` (plus a non-zero return for the cut log, the one
    callback whose return value stops the solve). A failure here never escapes into the
    optimizer: it is logged and the solve goes on.
    """

    def on_callback(cbprob: Any, data: Any) -> Any:
        answer = AppAnswer()
        try:
            body = {"problemName": problem_name, "attributes": _attributes(cbprob, keys)}
            file = _incumbent_file(cbprob, problem_name, names) if kind == "INTSOL" else None
            answer = session.ask(kind, body, file)
            if answer.controls:
                _apply_controls(cbprob, answer.controls, sink, emit)
            if answer.interrupt:
                cbprob.interrupt()
        except Exception as exc:
            emit(f"Warning: the {kind} callback failed: {type(exc).__name__}: {exc}")
        # The return value each callback type takes (FICO's type stubs): only the cut log's
        # counts (non-zero stops); the others stop through interrupt() above.
        if kind == "GAPNOTIFY":
            return _next_gap_targets(answer.controls)
        if kind == "CUTLOG":
            return 1 if answer.interrupt else 0
        return None

    return on_callback


def _next_gap_targets(controls: Mapping[str, Any]) -> tuple[float | None, ...]:
    """GAPNOTIFY's return value: a new target for each gap control the answer set, else None."""
    upper = {str(name).upper().removeprefix("XPRS_"): value for name, value in controls.items()}
    targets: list[float | None] = []
    for name in _GAP_TARGETS:
        try:
            targets.append(float(upper[name]) if name in upper else None)
        except (TypeError, ValueError):
            targets.append(None)
    return tuple(targets)


def _incumbent_file(prob: Any, problem_name: str, names: list[str]) -> bytes:
    """The new incumbent in the ``.slx`` layout ``writeSlxSol`` uses (one column per line)."""
    values = prob.getCallbackSolution()
    lines = [f"NAME {problem_name}"]
    lines += [f" C {name} {value:.17g}" for name, value in zip(names, values, strict=False)]
    lines.append("ENDATA")
    return ("\n".join(lines) + "\n").encode("utf-8")
