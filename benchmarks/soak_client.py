"""The soak's client: one triggerer-like process (see :mod:`benchmarks.soak`).

``python -m benchmarks.soak_client '<json arguments>'`` submits a deferred job every
``job_interval_seconds`` over REST (as a worker does before deferring) and follows each through
``InsightJobTrigger.run()`` on one event loop, as a triggerer does; beside them one blocking task
(``InsightJobOperator.execute`` on a thread, the sync driver) follows one long job. Run-log lines
are caught where the task log would write them and each job's lines are printed, with its end, as
one JSON line on stdout when it ends; the parent compares them with the emulator's log. When the
stream is over the client prints ``{"done": ...}`` and waits for stdin to close, so that the
parent can measure it one last time while it still holds everything it held.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, MutableMapping
from typing import Any

import structlog

from airflow_insight.exceptions import InsightError
from airflow_insight.transport.rest import InsightRestClient
from benchmarks.child import _BenchTaskInstance, _operator
from benchmarks.harness import cpu_seconds
from benchmarks.jobs import connection_json, job_request, settings

CONN_ID = "insight_default"
#: A failed submission (the server restarting) is tried again this often, then given up.
SUBMIT_ATTEMPTS = 30
SUBMIT_RETRY_SECONDS = 1.0


class LineCatcher:
    """A structlog processor: run-log lines go to their job's list, other records on."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._lines: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def __call__(self, logger: Any, name: str, event: MutableMapping[str, Any]) -> Any:
        """Keep a run-log line (the job is named in its text) and drop the record."""
        del logger, name
        text = event.get("event")
        if not isinstance(text, str) or not text.startswith(self._prefix):
            return event
        line = text[len(self._prefix) :]
        job_id = line.partition(": ")[0]
        with self._lock:
            self._lines.setdefault(job_id, []).append(line)
        raise structlog.DropEvent

    def take(self, job_id: str) -> list[str]:
        """The lines caught for ``job_id``, forgotten here."""
        with self._lock:
            return self._lines.pop(job_id, [])


class Reporter:
    """Prints one JSON line per ended job (stdout is the channel to the parent)."""

    def __init__(self, catcher: LineCatcher) -> None:
        self._catcher = catcher
        self._lock = threading.Lock()
        self.ended = 0

    def job_ended(self, job_id: str, mode: str, status: str, rest_lines: list[str]) -> None:
        """Report a job's end with every line the task log got for it."""
        lines = self._catcher.take(job_id) + rest_lines
        self.emit(
            {"job": job_id, "mode": mode, "status": status, "lines": lines, "rest": len(rest_lines)}
        )
        self.ended += 1

    def emit(self, document: dict[str, Any]) -> None:
        """Print one JSON document as one line, whole, whichever thread calls."""
        with self._lock:
            sys.stdout.write(json.dumps(document) + "\n")
            sys.stdout.flush()


def _configure_logs(log_path: str, catcher: LineCatcher) -> None:
    """Run-log lines to the catcher; every other record (ours, Airflow's) to ``log_path``."""
    handle = open(log_path, "a")  # noqa: SIM115 - open for the life of the process
    structlog.configure(
        processors=[
            catcher,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.WriteLoggerFactory(handle),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(handle)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


# --------------------------------------------------------------------------- the blocking task


def _blocking_task(job_id: str, reporter: Reporter) -> threading.Thread:
    """Start the blocking task's thread: ``execute`` follows ``job_id`` to its end."""

    def run() -> None:
        try:
            result = _operator(job_id).execute({"ti": _BenchTaskInstance()})
            status = str(result["status"])
        except Exception as exc:  # the soak reports it as a wrong end
            status = f"{type(exc).__name__}: {exc}"
        reporter.job_ended(job_id, "blocking", status, [])

    thread = threading.Thread(target=run, name="soak-blocking-task", daemon=True)
    thread.start()
    return thread


# --------------------------------------------------------------------------- deferred jobs


def _submit(rest: InsightRestClient, job_id: str) -> str | None:
    """Create the job as a worker would; None once it exists, else the last error."""
    error = "not tried"
    for _ in range(SUBMIT_ATTEMPTS):
        try:
            rest.submit_job(job_request(job_id))
            return None
        except InsightError as exc:
            error = str(exc)
        try:  # the submission may have reached the server before the answer was lost
            rest.get_job(job_id)
            return None
        except InsightError:
            time.sleep(SUBMIT_RETRY_SECONDS)
    return error


async def _follow(job_id: str, reporter: Reporter) -> None:
    """Follow one job; whatever escapes the trigger is that job's (wrong) end, not the soak's."""
    try:
        status, rest_lines = await _trigger_to_its_end(job_id)
    except Exception as exc:
        status, rest_lines = f"raised {type(exc).__name__}: {exc}", []
    reporter.job_ended(job_id, "deferred", status, rest_lines)


async def _trigger_to_its_end(job_id: str) -> tuple[str, list[str]]:
    """``InsightJobTrigger.run()`` to its one event, then what ``execute_complete`` reads."""
    from airflow_insight.hooks.insight import InsightHook
    from airflow_insight.triggers.insight import InsightJobTrigger
    from airflow_insight.triggers.payload import TriggerPayload

    trigger = InsightJobTrigger(insight_conn_id=CONN_ID, compute_job_id=job_id)
    payload: dict[str, Any] = {"kind": "no event"}
    async for event in trigger.run():
        payload = event.payload
        break
    rest_lines: list[str] = []
    if payload.get("kind") == "finished":
        outcome = TriggerPayload.from_dict(payload).result()
        status = outcome.status
        # The resumed task fills the log from REST where the trigger did not forward it all.
        rest_lines = await asyncio.to_thread(
            InsightHook(CONN_ID).run_log_after, outcome, int(payload.get("last_run_log_line", -1))
        )
    else:
        status = f"{payload.get('kind')}: {payload.get('message', '')}"
    return status, rest_lines


async def _stream(
    base_url: str,
    prefix: str,
    count: int,
    interval: float,
    reporter: Reporter,
    submit_failed: Callable[[str, str], None],
) -> None:
    """Submit ``count`` jobs ``interval`` apart and follow each; return when all have ended."""
    rest = InsightRestClient(settings(base_url))
    following: set[asyncio.Task[None]] = set()
    started = time.monotonic()
    try:
        for index in range(count):
            await asyncio.sleep(max(0.0, started + index * interval - time.monotonic()))
            job_id = f"{prefix}{index:06d}"
            error = await asyncio.to_thread(_submit, rest, job_id)
            if error is not None:
                submit_failed(job_id, error)
                continue
            task = asyncio.create_task(_follow(job_id, reporter))
            following.add(task)
            task.add_done_callback(following.discard)
        while following:
            await asyncio.gather(*list(following))
    finally:
        rest.close()


def main() -> None:
    """Run the stream and the blocking task; report; wait for the parent to close stdin."""
    arguments = json.loads(sys.argv[1])
    base_url = arguments["base_url"]
    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = connection_json(
        base_url, **arguments.get("extras", {})
    )
    from airflow_insight.hooks.insight import RUN_LOG_PREFIX
    from airflow_insight.triggers import insight  # noqa: F401 - imported before the figures

    catcher = LineCatcher(RUN_LOG_PREFIX)
    _configure_logs(arguments["log_path"], catcher)
    reporter = Reporter(catcher)
    failed: list[str] = []

    def submit_failed(job_id: str, error: str) -> None:
        failed.append(job_id)
        reporter.emit({"job": job_id, "mode": "submit", "status": f"not submitted: {error}"})

    reporter.emit({"ready": True, "cpu_seconds": cpu_seconds()})
    blocking = _blocking_task(arguments["blocking_job_id"], reporter)
    asyncio.run(
        _stream(
            base_url,
            arguments["prefix"],
            int(arguments["jobs"]),
            float(arguments["job_interval_seconds"]),
            reporter,
            submit_failed,
        )
    )
    blocking.join(timeout=float(arguments.get("blocking_grace_seconds", 300.0)))
    reporter.emit(
        {
            "done": True,
            "cpu_seconds": cpu_seconds(),
            "ended": reporter.ended,
            "blocking_alive": blocking.is_alive(),
            "not_submitted": len(failed),
        }
    )
    sys.stdin.read()  # measured by the parent until it closes our stdin


if __name__ == "__main__":
    main()
