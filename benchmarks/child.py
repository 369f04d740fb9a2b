"""The client side of the benchmarks, one fresh process per measurement.

``python -m benchmarks.child <kind> '<json arguments>'`` prints one JSON object on its last
stdout line. A child holds only the client (the emulator is another process), so its CPU time,
RSS and sockets are the client's alone. Times are ``time.monotonic()`` readings, comparable with
the emulator's record (see :mod:`benchmarks.emulator_proc`).

Kinds:

* ``sync-latency``: jobs one after another, each the way a blocking ``execute`` runs it (a new
  driver and socket per job, the REST client's token cached); returns when ``wait`` returned.
* ``deferred``: N jobs followed at once on one event loop (the triggerer's equivalent): through
  ``InsightJobTrigger.run()`` when the trigger module exists, else through the async driver.
* ``submit``: "execute starts" to the submit request, cold (no token) and with a cached token.
* ``idle``: CPU time and wake-ups of the blocking follower over a silent job.
* ``memory``: RSS growth of the blocking follower over a long run log.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil

from airflow_insight.protocol import events as ev
from airflow_insight.transport.rest import InsightRestClient
from airflow_insight.transport.sync_driver import SyncJobFollower
from benchmarks.harness import PeakRss, cpu_seconds, rss_mb, socket_count
from benchmarks.jobs import job_request, settings

log = logging.getLogger("benchmarks.child")


def _no_lines(event: ev.Event) -> None:
    del event


# --------------------------------------------------------------------------- sync


class _BenchTaskInstance:
    """The two things ``InsightJobOperator.execute`` asks of ``context["ti"]`` with a fixed
    ``job_id`` and no task state store: where to push the job link, and ids for log lines."""

    dag_id = "bench"
    task_id = "run"
    run_id = "bench-run"
    map_index = -1
    try_number = 1
    start_date = None

    def xcom_push(self, key: str, value: Any) -> None:
        del key, value


def _operator(job_id: str) -> Any:
    from airflow_insight.operators.insight import InsightJobOperator

    return InsightJobOperator(
        task_id=f"run-{job_id}", job_id=job_id, insight_conn_id="insight_default"
    )


def sync_latency(base_url: str, job_ids: list[str], warmup_id: str) -> dict[str, Any]:
    """Run each job to its end through ``InsightJobOperator.execute`` (blocking mode).

    A new operator per job (new hook, REST client, token and socket, as a new task would
    have); the context holds only a task instance to push the link XCom to. One uncounted
    warm-up job first, so first-use imports do not count against the first job.
    """
    os.environ["AIRFLOW_CONN_INSIGHT_DEFAULT"] = _conn_json(base_url)
    _task_log_to_file()
    returned: dict[str, float] = {}
    statuses: dict[str, str] = {}
    context = {"ti": _BenchTaskInstance()}
    _operator(warmup_id).execute(context)
    for job_id in job_ids:
        result = _operator(job_id).execute(context)
        returned[job_id] = time.monotonic()
        statuses[job_id] = result["status"]
    return {"returned": returned, "statuses": statuses}


def submit(base_url: str, job_ids: list[str], cached: bool, warmup_id: str) -> dict[str, Any]:
    """From ``InsightJobOperator.execute`` starting to the job being created on the server.

    Cold: a new operator per job (its hook mints a token: POST token + GET token expiry).
    Cached: each new operator is handed one hook whose REST client already holds a token.
    """
    from airflow_insight.hooks.insight import InsightHook

    os.environ["AIRFLOW_CONN_INSIGHT_DEFAULT"] = _conn_json(base_url)
    _task_log_to_file()
    warm = InsightHook("insight_default") if cached else None
    if warm is not None:
        warm.get_rest_client().current_token()
    started: dict[str, float] = {}
    context = {"ti": _BenchTaskInstance()}
    _operator(warmup_id).execute(context)  # first-use imports, not counted
    for job_id in job_ids:
        operator = _operator(job_id)
        if warm is not None:
            operator._hook = warm
        started[job_id] = time.monotonic()
        operator.execute(context)
    return {"started": started}


def _task_log_to_file() -> None:
    """Send structlog records (the operator's and trigger's run-log lines) to a JSON-lines file.

    Outside a task structlog would print to stdout, our result channel; a file at INFO keeps the
    cost of formatting and writing each line, as a task log file has.
    """
    import tempfile

    import structlog

    # Kept open for the life of this short process (removed when it exits).
    handle = tempfile.NamedTemporaryFile("w", prefix="insight-bench-task-log-")  # noqa: SIM115
    _KEEP.append(handle)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.WriteLoggerFactory(handle),
        cache_logger_on_first_use=True,
    )


_KEEP: list[Any] = []


# --------------------------------------------------------------------------- deferred


def _trigger_available() -> bool:
    try:
        return importlib.util.find_spec("airflow_insight.triggers.insight") is not None
    except ModuleNotFoundError:  # no triggers package at all yet
        return False


async def _follow_with_driver(
    base_url: str, job_ids: list[str], on_returned: Callable[[str, str], None]
) -> None:
    from airflow_insight.transport.async_driver import AsyncJobFollower

    rest = InsightRestClient(settings(base_url))
    async with AsyncJobFollower(settings(base_url), rest, on_event=_no_lines) as driver:
        await driver.open()
        for job_id in job_ids:
            driver.follow(job_id)

        async def one(job_id: str) -> None:
            outcome = await driver.wait(job_id, timeout_seconds=120)
            on_returned(job_id, outcome.status if outcome else "TIMEOUT")

        await asyncio.gather(*(one(job_id) for job_id in job_ids))
    rest.close()


async def _follow_with_triggers(
    job_ids: list[str], on_returned: Callable[[str, str], None]
) -> None:
    from airflow_insight.triggers.insight import InsightJobTrigger

    async def one(job_id: str) -> None:
        trigger = InsightJobTrigger(insight_conn_id="insight_default", compute_job_id=job_id)
        status = "NO-EVENT"
        async for event in trigger.run():
            payload = event.payload
            if payload.get("kind") == "finished":
                status = payload["outcome"]["status"]
            else:
                status = f"{payload.get('kind')}: {payload.get('message', '')}"
            break
        on_returned(job_id, status)

    await asyncio.gather(*(one(job_id) for job_id in job_ids))


def deferred(base_url: str, job_ids: list[str], use_trigger: bool) -> dict[str, Any]:
    """Submit every job over REST (as workers would), then follow them all on one loop."""
    rest = InsightRestClient(settings(base_url))
    for job_id in job_ids:
        rest.submit_job(job_request(job_id), None, None)
    rest.close()
    returned: dict[str, float] = {}
    statuses: dict[str, str] = {}
    peak_sockets = [0]
    port = int(base_url.rsplit(":", 1)[1].split("/")[0])

    def on_returned(job_id: str, status: str) -> None:
        returned[job_id] = time.monotonic()
        statuses[job_id] = status
        if len(returned) == 1:
            peak_sockets[0] = socket_count(remote_port=port)

    use_trigger = use_trigger and _trigger_available()
    if use_trigger:  # import before the baseline: RSS growth is the jobs', not the imports'
        import airflow_insight.triggers.insight
    import airflow_insight.transport.async_driver  # noqa: F401

    rss_before = rss_mb()
    cpu_before = cpu_seconds()
    wall_before = time.monotonic()
    with PeakRss() as peak:
        if use_trigger:
            os.environ["AIRFLOW_CONN_INSIGHT_DEFAULT"] = _conn_json(base_url)
            _task_log_to_file()
            asyncio.run(_follow_with_triggers(job_ids, on_returned))
        else:
            asyncio.run(_follow_with_driver(base_url, job_ids, on_returned))
    return {
        "returned": returned,
        "statuses": statuses,
        "via": "trigger" if use_trigger else "async driver",
        "rss_before_mb": rss_before,
        "rss_peak_mb": peak.peak_mb,
        "cpu_seconds": cpu_seconds() - cpu_before,
        "wall_seconds": time.monotonic() - wall_before,
        "sockets_at_first_end": peak_sockets[0],
    }


def _conn_json(base_url: str) -> str:
    from benchmarks.jobs import connection_json

    return connection_json(base_url)


# --------------------------------------------------------------------------- idle


def idle(base_url: str, job_id: str, settle_seconds: float) -> dict[str, Any]:
    """Follow one silent job; CPU time and voluntary context switches after ``settle_seconds``."""
    process = psutil.Process()
    rest = InsightRestClient(settings(base_url))
    marks: dict[str, float] = {}

    def mark_start() -> None:
        marks["cpu"] = cpu_seconds()
        marks["switches"] = float(process.num_ctx_switches().voluntary)
        marks["at"] = time.monotonic()

    timer = threading.Timer(settle_seconds, mark_start)
    with SyncJobFollower(settings(base_url), rest, on_event=_no_lines) as driver:
        driver.open()
        driver.submit(job_request(job_id))
        timer.start()
        outcome = driver.wait(job_id, timeout_seconds=3600)
    ended = time.monotonic()
    timer.join()
    rest.close()
    return {
        "status": outcome.status if outcome else "TIMEOUT",
        "window_seconds": ended - marks["at"],
        "cpu_seconds": cpu_seconds() - marks["cpu"],
        "voluntary_switches": process.num_ctx_switches().voluntary - marks["switches"],
        "window_start": marks["at"],
        "window_end": ended,
    }


# --------------------------------------------------------------------------- memory


def memory(base_url: str, job_id: str, lines: int, log_path: str) -> dict[str, Any]:
    """Follow a job writing ``lines`` run-log lines into a file-backed logger; RSS growth."""
    handler = logging.FileHandler(log_path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    task_log = logging.getLogger("benchmarks.task-log")
    task_log.addHandler(handler)
    task_log.setLevel(logging.INFO)
    task_log.propagate = False
    last_live: dict[str, float] = {}
    forwarded = [0]

    def sink(batch: ev.Event) -> None:
        if not isinstance(batch, ev.RunLogLines):
            return
        for line in batch.lines:
            task_log.info("%s", line)
        forwarded[0] += len(batch.lines)
        if batch.last_line == lines - 1 and "rss_mb" not in last_live:
            last_live["rss_mb"] = rss_mb()

    rest = InsightRestClient(settings(base_url))
    with SyncJobFollower(settings(base_url), rest, on_event=sink) as driver:
        driver.open()
        baseline = rss_mb()
        started = time.monotonic()
        with PeakRss(interval_seconds=0.02) as peak:
            driver.submit(job_request(job_id))
            outcome = driver.wait(job_id, timeout_seconds=1800)
        elapsed = time.monotonic() - started
    rest.close()
    handler.close()
    return {
        "status": outcome.status if outcome else "TIMEOUT",
        "baseline_mb": baseline,
        "peak_mb": peak.peak_mb,
        "at_last_live_line_mb": last_live.get("rss_mb"),
        "forwarded": forwarded[0],
        "seconds": elapsed,
    }


KINDS: dict[str, Callable[..., dict[str, Any]]] = {
    "sync-latency": sync_latency,
    "submit": submit,
    "deferred": deferred,
    "idle": idle,
    "memory": memory,
}


def main() -> None:
    """Run one kind with its JSON arguments; print the JSON result as the last line."""
    logging.basicConfig(level=logging.WARNING)
    kind, arguments = sys.argv[1], json.loads(sys.argv[2])
    result = KINDS[kind](**arguments)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
