"""Real solves on the emulator's loop: when a job solves, the solve thread, and the end it makes.

A SOLVER job whose script has ``solve`` and whose payload holds an LP/MPS model is solved with
xpress in a worker thread (:mod:`.solver`); its log lines are flushed to the socket as they come,
and its callbacks pause it for APP_MESSAGE round trips (:mod:`.callbacks`).

The emulator never pretends: without xpress such a submission is refused with 422
naming the extra to install, unless :attr:`EmulatorConfig.simulate_solves` is set; then the job
runs its script with a "SIMULATED" line at the start and end of its run log and a
``SIMULATED.txt`` plus solution status ``Simulated`` in its results. The same labels mark every
other job of a solving script (the demo's) that is not solved for real: a MOSEL job (this
emulator runs no Mosel models) or a payload without an LP/MPS model. Scripts without ``solve``
(the ones tests build) are canned by their author's choice and carry no label.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import json
import time
import zipfile
from typing import Any

from airflow_insight.emulator import solver
from airflow_insight.emulator.callbacks import (
    STOPPED_BY_DELETE,
    STOPPED_BY_TIMEOUT,
    PendingAppMessage,
    SolveSession,
    requested_callbacks,
)
from airflow_insight.emulator.hub import Hub
from airflow_insight.emulator.jobs import Job
from airflow_insight.emulator.scripts import JobScript

#: How often lines of a real solve are flushed to the socket.
SOLVE_FLUSH_SECONDS = 0.05
MODEL_SUFFIXES = (".lp", ".mps", ".lp.gz", ".mps.gz")

SIMULATED_LINE = (
    "Emulator: SIMULATED run: {why}, so these lines are canned and say nothing about {what}"
)
_NO_XPRESS = "xpress is not installed (--simulate-solves)"
_NO_MOSEL = "this emulator does not run Mosel models"
_NO_MODEL = "the payload holds no LP/MPS model to solve"


@dataclasses.dataclass(frozen=True)
class Solved:
    """How the EXECUTING phase ended: modelStatus, results zip, and a final status if forced."""

    model_status: str | None
    results_zip: bytes | None
    final_status: str | None = None


def needs_solver(script: JobScript, request: dict[str, Any], payload: bytes | None) -> bool:
    """Whether this submission would be solved for real (a model, a solving script)."""
    if not script.solve or request.get("computeJobType") != "SOLVER" or payload is None:
        return False
    return _has_model(payload)


def refusal(script: JobScript, request: dict[str, Any], payload: bytes | None) -> str | None:
    """Why the emulator refuses this submission (no xpress, not simulating), or None."""
    if not needs_solver(script, request, payload):
        return None
    return solver.solver_missing_reason()


def simulated_notice(hub: Hub, job: Job) -> str | None:
    """The SIMULATED line for a job of a solving script that runs its canned log instead."""
    if not job.script.solve:
        return None
    what = "the submitted model"
    if needs_solver(job.script, job.request, job.payload):
        if not solver.solver_missing_reason():
            return None  # solved for real
        why = _NO_XPRESS
    elif job.request.get("computeJobType") == "MOSEL":
        why = _NO_MOSEL
    else:
        why, what = _NO_MODEL, "any model"
    return SIMULATED_LINE.format(why=why, what=what)


def timeout_line(pending: PendingAppMessage, limit: float) -> str:
    """The run-log line of a job failed for an unanswered APP_MESSAGE."""
    return (
        f"Error: no APP_MESSAGE_RESPONSE to {pending.app_message_type} message {pending.id} "
        f"within {limit:g} s: the job is terminated and marked FAILED"
    )


def _has_model(payload: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            return any(name.lower().endswith(MODEL_SUFFIXES) for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


async def solve_if_asked(hub: Hub, job: Job) -> Solved | None:
    """Solve the payload for real when the job should be; None means "run the script"."""
    if not needs_solver(job.script, job.request, job.payload) or solver.solver_missing_reason():
        return None
    assert job.payload is not None
    loop = asyncio.get_running_loop()
    pending_lines: list[str] = []
    limit = job.app_message_limit(hub.config.app_message_timeout_seconds)

    def on_timeout(message: PendingAppMessage) -> None:
        def expire() -> None:
            hub.app_message_timed_out(job, message)
            hub.emit_lines(job, [timeout_line(message, limit)])

        _call_soon(loop, expire)

    callbacks, _ = requested_callbacks(job.request.get("solver"))
    session = SolveSession(
        callbacks,
        send=lambda message: _call_soon(loop, hub.send_app_message, job, message),
        on_timeout=on_timeout,
        timeout_seconds=limit,
    )
    job.session = session
    payload, request = job.payload, job.request.get("solver")
    started = time.monotonic()

    def on_log_line(line: str) -> None:
        _call_soon(loop, pending_lines.append, line)

    def solve() -> solver.SolveResult:
        try:
            return solver.solve_payload(payload, request, on_log_line, session)
        finally:
            hub.record.add(
                "solve_finished",
                {"stoppedBy": session.stopped_by, "seconds": time.monotonic() - started},
                compute_job_id=job.id,
            )

    future = loop.run_in_executor(None, solve)
    try:
        while not future.done():
            await asyncio.wait({future}, timeout=SOLVE_FLUSH_SECONDS)
            _flush(hub, job, pending_lines)
    except asyncio.CancelledError:
        session.interrupt(STOPPED_BY_DELETE)  # cancelled: never leave the optimizer running
        raise
    await asyncio.sleep(0)  # let the last call_soon_threadsafe callbacks run
    _flush(hub, job, pending_lines)
    job.session = None
    return _outcome(hub, job, future)


def _outcome(hub: Hub, job: Job, future: asyncio.Future[solver.SolveResult]) -> Solved:
    try:
        result = future.result()
    except solver.SolverUnavailable as exc:  # e.g. the licence could not be initialised
        hub.emit_lines(job, [f"Error: the emulator cannot solve: {exc}"])
        return Solved(None, None, final_status="FAILED")
    except Exception as exc:  # a solver crash fails the solve, never the emulator
        hub.emit_lines(job, [f"Emulator: the solve failed: {type(exc).__name__}: {exc}"])
        return Solved("ERROR", zip_files({"solution-status.json": _status_json(job, "Unsolved")}))
    if result.stopped_by == STOPPED_BY_TIMEOUT:
        return Solved(None, None, final_status="FAILED")
    return Solved(result.model_status, zip_files(dict(result.result_files)))


def _call_soon(loop: asyncio.AbstractEventLoop, function: Any, *args: Any) -> None:
    """Hand work to the loop from the solve thread; after the emulator stopped, drop it."""
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening
        loop.call_soon_threadsafe(function, *args)


def _status_json(job: Job, status: str) -> bytes:
    return json.dumps({job.id: status}).encode()


def _flush(hub: Hub, job: Job, pending: list[str]) -> None:
    if pending:
        lines = pending[:]
        pending.clear()
        hub.emit_lines(job, lines)


def zip_files(files: dict[str, bytes]) -> bytes:
    """A zip (deflated) holding ``files``: a results attachment."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()
