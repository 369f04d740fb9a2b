"""The polling peer: how fast a REST poller on FICO's own schedule learns that a job ended.

FICO's Python client polls the job every 50 ms at first, 50 ms longer each round, capped at 1 s
(protocol reference §B5). This peer does the same against ``GET /api/compute-jobs/{id}`` with
our REST client, then fetches the run log once the job is terminal, which is the same work the
push follower does at the end, so the two latencies are comparable.
"""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

from airflow_insight.protocol.statuses import is_terminal
from airflow_insight.transport.rest import InsightRestClient
from benchmarks.jobs import job_request, settings

FIRST_DELAY_SECONDS = 0.05
STEP_SECONDS = 0.05
MAX_DELAY_SECONDS = 1.0


def poll_job(client: InsightRestClient, job_id: str) -> dict[str, Any]:
    """Submit ``job_id`` without a socket, poll it to its end, fetch its run log.

    Returns monotonic times: ``seen`` (a GET showed the terminal status), ``returned`` (the run
    log was fetched too) and how many GETs it took.
    """
    client.submit_job(job_request(job_id, run_log_messages=False), None, None)
    delay = FIRST_DELAY_SECONDS
    polls = 0
    while True:
        time.sleep(delay)
        document = client.get_job(job_id)
        polls += 1
        if is_terminal(str(document.get("status"))):
            seen = time.monotonic()
            break
        delay = min(delay + STEP_SECONDS, MAX_DELAY_SECONDS)
    run_log_url = document.get("runLogUrl")
    if run_log_url:
        client.get_run_log(run_log_url, compute_job_id=job_id)
    return {"seen": seen, "returned": time.monotonic(), "polls": polls}


def poll_jobs(base_url: str, job_ids: list[str], concurrency: int) -> dict[str, dict[str, Any]]:
    """Poll every job, ``concurrency`` at a time (one REST client, as one worker would)."""
    client = InsightRestClient(settings(base_url))
    client.current_token()
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
            futures = {job_id: pool.submit(poll_job, client, job_id) for job_id in job_ids}
            return {job_id: future.result() for job_id, future in futures.items()}
    finally:
        client.close()
