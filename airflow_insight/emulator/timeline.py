"""One task per job walks it through its script: statuses, run log, requeue, real solve, end.

Lines are produced in batches (one RUNLOG_UPDATED per batch) on an absolute schedule, so a job
costs one sleeping task and one message per batch however fast its log runs. Real solves and
the solver callbacks they send are in :mod:`.solving`.
"""

from __future__ import annotations

import asyncio
import json
import time

from airflow_insight.emulator import faults as f
from airflow_insight.emulator.callbacks import (
    INTERRUPTED_LINE,
    STOPPED_BY_CLIENT,
    STOPPED_BY_DELETE,
    STOPPED_BY_TIMEOUT,
    AppAnswer,
    PendingAppMessage,
)
from airflow_insight.emulator.hub import Hub
from airflow_insight.emulator.jobs import Job
from airflow_insight.emulator.scripts import JobScript, ScriptedAppMessage
from airflow_insight.emulator.solving import (
    Solved,
    simulated_notice,
    solve_if_asked,
    timeout_line,
    zip_files,
)
from airflow_insight.protocol import messages as m

#: Optimizer ids of the attributes scripted messages usually carry (0 for any other name).
_ATTRIBUTE_KEYS = {
    "LPOBJVAL": 2001,
    "MIPOBJVAL": 2003,
    "BESTBOUND": 2004,
    "MIPBESTOBJVAL": 2006,
    "NODES": 1013,
    "MIPSOLS": 1017,
    "TIME": 1122,
}


async def run_job(hub: Hub, job: Job) -> None:
    """Walk ``job`` through its script; cancelled by DELETE (see :func:`cancel_job`)."""
    script = job.script
    await asyncio.sleep(script.queued_seconds)
    if script.hold is not None:
        await hub.gate(script.hold).wait()
    for status in script.pre_executing_statuses:
        hub.set_status(job, status)
        await asyncio.sleep(script.status_step_seconds)
    hub.set_status(job, "EXECUTING")
    solved = await solve_if_asked(hub, job)
    if solved is None:
        simulated = simulated_notice(hub, job)
        if simulated:
            hub.emit_lines(job, [simulated])
        stopped_by = await _write_scripted_log(hub, job, script)
        if simulated:
            hub.emit_lines(job, [simulated])
        solved = _scripted_outcome(job, script, stopped_by, simulated=bool(simulated))
    if hub.config.send_runlog_completed and job.run_log_messages:
        hub.push(job, m.RunLogCompleted(job.id, len(job.log)))
    await _finish(hub, job, script, solved)


def _scripted_outcome(
    job: Job, script: JobScript, stopped_by: str | None, simulated: bool
) -> Solved:
    if stopped_by == STOPPED_BY_TIMEOUT:
        return Solved(None, None, final_status="FAILED")
    solution_status = "Simulated" if simulated else script.solution_status
    return Solved(script.model_status, _scripted_results(job, solution_status, simulated))


async def _finish(hub: Hub, job: Job, script: JobScript, solved: Solved) -> None:
    model_status, results = solved.model_status, solved.results_zip
    final_status = solved.final_status or script.final_status
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
    if job.session is not None:
        job.session.interrupt(STOPPED_BY_DELETE)  # the optimizer stops now, not at its end
    hub.release_app_message(job)
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


async def _write_scripted_log(hub: Hub, job: Job, script: JobScript) -> str | None:
    """Write the script's log, sending its APP_MESSAGEs on the way; why it stopped early."""
    requeue_at = _requeue_point(hub, job, script)
    messages = sorted(script.app_messages, key=lambda message: message.after_lines)
    interval = script.batch_size / script.lines_per_second if script.lines_per_second > 0 else 0.0
    next_at = time.monotonic()
    written = 0
    batch_size = max(script.batch_size, 1)
    while True:
        while messages and messages[0].after_lines <= written:
            answer = await _ask_scripted(hub, job, messages.pop(0))
            if answer.interrupt:
                if answer.stopped_by is None:
                    hub.emit_lines(job, [INTERRUPTED_LINE])
                return answer.stopped_by or STOPPED_BY_CLIENT
        if written >= script.log_lines:
            return None
        count = min(batch_size, script.log_lines - written)
        for stop_at in (requeue_at, messages[0].after_lines if messages else None):
            if stop_at is not None and written < stop_at:
                count = min(count, stop_at - written)
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


async def _ask_scripted(hub: Hub, job: Job, scripted: ScriptedAppMessage) -> AppAnswer:
    """One scripted APP_MESSAGE round trip, with the same limit as a real solve's."""
    attributes = {
        name: {"key": _ATTRIBUTE_KEYS.get(name.upper(), 0), "name": name, "value": value}
        for name, value in scripted.attributes.items()
    }
    file = None
    if scripted.with_file:
        file = f"NAME {job.id}\n C x {len(job.log)}\nENDATA\n".encode()
    body = {"problemName": job.id, "attributes": attributes}
    pending = PendingAppMessage(scripted.app_message_type, body, file)
    hub.send_app_message(job, pending)
    limit = job.app_message_limit(hub.config.app_message_timeout_seconds)
    try:
        answer = await asyncio.wait_for(asyncio.wrap_future(pending.answer), limit)
    except TimeoutError:
        hub.app_message_timed_out(job, pending)
        hub.emit_lines(job, [timeout_line(pending, limit)])
        return AppAnswer(interrupt=True, stopped_by=STOPPED_BY_TIMEOUT)
    for name, value in answer.controls.items():
        hub.emit_lines(job, [f"Control {name} set to {value} (APP_MESSAGE_RESPONSE)"])
    return answer


async def _requeue(hub: Hub, job: Job, script: JobScript) -> None:
    """The worker was lost: back to QUEUED with executionAttempts + 1; the log is kept."""
    job.execution_attempts += 1
    hub.emit_lines(job, [f"Job requeued: execution attempt {job.execution_attempts} starting"])
    hub.set_status(job, "QUEUED")
    await asyncio.sleep(script.requeue_seconds)
    hub.set_status(job, "EXECUTING")


def _scripted_results(job: Job, solution_status: str, simulated: bool) -> bytes:
    files = {"solution-status.json": json.dumps({job.id: solution_status}).encode()}
    if simulated:
        files["SIMULATED.txt"] = SIMULATED_RESULTS_NOTE.encode()
    return zip_files(files)


SIMULATED_RESULTS_NOTE = (
    "SIMULATED: the emulator ran without the xpress package (--simulate-solves), so nothing\n"
    "was solved. These results are canned and say nothing about the submitted model.\n"
    'Install the solver extra for real solves: pip install "airflow-insight[solver]"\n'
)
