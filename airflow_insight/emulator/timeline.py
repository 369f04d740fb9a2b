"""One task per job walks it through its script: statuses, run log, requeue, real solve, end.

Lines are produced in batches (one RUNLOG_UPDATED per batch) on an absolute schedule, so a job
costs one sleeping task and one message per batch however fast its log runs.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import io
import json
import time
import zipfile
from collections.abc import Callable
from typing import Any

from airflow_insight.emulator import faults as f
from airflow_insight.emulator.hub import Hub
from airflow_insight.emulator.jobs import Job
from airflow_insight.emulator.scripts import JobScript
from airflow_insight.protocol import messages as m

#: How often lines of a real solve are flushed to the socket.
SOLVE_FLUSH_SECONDS = 0.05
MODEL_SUFFIXES = (".lp", ".mps", ".lp.gz", ".mps.gz")


async def run_job(hub: Hub, job: Job) -> None:
    """Walk ``job`` through its script; cancelled by DELETE (see :func:`cancel_job`)."""
    script = job.script
    await asyncio.sleep(script.queued_seconds)
    for status in script.pre_executing_statuses:
        hub.set_status(job, status)
        await asyncio.sleep(script.status_step_seconds)
    hub.set_status(job, "EXECUTING")
    solved = await _solve_if_asked(hub, job)
    if solved is None:
        await _write_scripted_log(hub, job, script)
        solved = (script.model_status, _scripted_results(job, script))
    if hub.config.send_runlog_completed and job.run_log_messages:
        hub.push(job, m.RunLogCompleted(job.id, len(job.log)))
    await _finish(hub, job, script, solved)


async def _finish(
    hub: Hub, job: Job, script: JobScript, solved: tuple[str | None, bytes | None]
) -> None:
    model_status, results = solved
    final_status = script.final_status
    override = hub.faults.take(f.FinishWith, job.id)
    if override is not None:
        final_status, model_status = override.status, override.model_status
    if final_status == "CANCELLED":
        hub.set_status(job, "CANCELLING")
        await asyncio.sleep(script.cancel_seconds)
        hub.set_status(job, "CANCELLED")
        return
    if final_status == "COMPLETED":
        hub.set_status(job, "COMPLETING")
        await asyncio.sleep(script.completing_seconds)
        job.results_zip = results
        job.model_status = model_status
    hub.set_status(job, final_status)


def cancel_job(hub: Hub, job: Job) -> asyncio.Task[None]:
    """Stop a running job: CANCELLING now, CANCELLED after the script's cancel time.

    The job's timeline is cancelled and CANCELLING set synchronously, in the caller's turn of
    the loop: the timeline cannot reach a terminal status in between (which CANCELLING would
    then overwrite), and a second DELETE already sees CANCELLING and starts no second cancel.
    Returns the task that sets CANCELLED; the caller keeps a reference to it.
    """
    if job.task is not None:
        job.task.cancel()  # takes effect at the timeline's current await: it never runs again
    hub.set_status(job, "CANCELLING")
    return asyncio.get_running_loop().create_task(_cancelled_after_delay(hub, job))


async def _cancelled_after_delay(hub: Hub, job: Job) -> None:
    await asyncio.sleep(job.script.cancel_seconds)
    hub.set_status(job, "CANCELLED")


# --------------------------------------------------------------------------- scripted log


def _requeue_point(hub: Hub, job: Job, script: JobScript) -> int | None:
    fault = hub.faults.take(f.Requeue, job.id)
    if fault is not None:
        return fault.after_lines
    return script.requeue_after_lines


async def _write_scripted_log(hub: Hub, job: Job, script: JobScript) -> None:
    requeue_at = _requeue_point(hub, job, script)
    interval = script.batch_size / script.lines_per_second if script.lines_per_second > 0 else 0.0
    next_at = time.monotonic()
    written = 0
    batch_size = max(script.batch_size, 1)
    while written < script.log_lines:
        count = min(batch_size, script.log_lines - written)
        if requeue_at is not None and written < requeue_at:
            count = min(count, requeue_at - written)
        lines = [
            script.line(n, job.id, job.execution_attempts) for n in range(written, written + count)
        ]
        hub.emit_lines(job, lines)
        written += count
        if requeue_at is not None and written == requeue_at:
            requeue_at = None
            await _requeue(hub, job, script)
        next_at += interval
        delay = next_at - time.monotonic()
        # Sleep 0 still yields, so a fast job never starves the sockets.
        await asyncio.sleep(max(delay, 0.0))


async def _requeue(hub: Hub, job: Job, script: JobScript) -> None:
    """The worker was lost: back to QUEUED with executionAttempts + 1; the log is kept."""
    job.execution_attempts += 1
    hub.emit_lines(job, [f"Job requeued: execution attempt {job.execution_attempts} starting"])
    hub.set_status(job, "QUEUED")
    await asyncio.sleep(script.requeue_seconds)
    hub.set_status(job, "EXECUTING")


def _scripted_results(job: Job, script: JobScript) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("solution-status.json", json.dumps({job.id: script.solution_status}))
    return buffer.getvalue()


# --------------------------------------------------------------------------- real solve


def _has_model(payload: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            return any(name.lower().endswith(MODEL_SUFFIXES) for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _solver_module() -> tuple[Any, str | None]:
    """The solver module, or None and the reason it cannot be used."""
    if importlib.util.find_spec("xpress") is None:
        return None, "the xpress package is not installed"
    try:
        module = importlib.import_module("airflow_insight.emulator.solver")
    except ImportError as exc:
        return None, f"the emulator's solver module cannot be loaded ({exc})"
    if not hasattr(module, "solve_payload"):
        return None, "the emulator's solver module has no solve_payload"
    return module, None


async def _solve_if_asked(hub: Hub, job: Job) -> tuple[str | None, bytes | None] | None:
    """Solve the payload for real when the script asks and it can; None means "use the script"."""
    if not job.script.solve or job.request.get("computeJobType") != "SOLVER":
        return None
    if job.payload is None or not _has_model(job.payload):
        return None
    module, reason = _solver_module()
    if module is None:
        hub.emit_lines(job, [f"Emulator: real solve unavailable, {reason}; scripted run follows"])
        return None
    pending: list[str] = []
    loop = asyncio.get_running_loop()

    def on_log_line(line: str) -> None:
        loop.call_soon_threadsafe(pending.append, line)

    call = _solve_call(module.solve_payload, job, on_log_line)
    future = loop.run_in_executor(None, call)
    while not future.done():
        await asyncio.wait({future}, timeout=SOLVE_FLUSH_SECONDS)
        _flush(hub, job, pending)
    await asyncio.sleep(0)  # let the last call_soon_threadsafe callbacks run
    _flush(hub, job, pending)
    try:
        result = future.result()
    except Exception as exc:  # a solver crash fails the solve, never the emulator
        if type(exc).__name__ == "SolverUnavailable":
            hub.emit_lines(job, [f"Emulator: real solve unavailable ({exc}); scripted run follows"])
            return None
        hub.emit_lines(job, [f"Emulator: the solve failed: {type(exc).__name__}: {exc}"])
        return "ERROR", _zip({"solution-status.json": json.dumps({job.id: "Unsolved"}).encode()})
    files = dict(result.result_files)
    return result.model_status, _zip(files)


def _solve_call(solve: Any, job: Job, on_log_line: Callable[[str], None]) -> Callable[[], Any]:
    solver = job.request.get("solver") or {}
    kwargs: dict[str, Any] = {"on_log_line": on_log_line}
    # The brief's signature also takes resultsToInclude; H2's current one reads it from solver.
    if "results_to_include" in inspect.signature(solve).parameters:
        kwargs["results_to_include"] = list(solver.get("resultsToInclude") or [])
    payload = job.payload
    return lambda: solve(payload, solver, **kwargs)


def _flush(hub: Hub, job: Job, pending: list[str]) -> None:
    if pending:
        lines = pending[:]
        pending.clear()
        hub.emit_lines(job, lines)


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()
