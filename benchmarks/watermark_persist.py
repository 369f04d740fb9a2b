"""What persisting the trigger's run-log watermarks costs a triggerer at 1,000 deferred jobs.

Run: ``.venv/bin/python -m benchmarks.watermark_persist [--jobs 1000] [--seconds 10]``

Both halves of a triggerer are measured with Airflow's own code on a temporary, migrated SQLite
``AIRFLOW_HOME`` (no network):

* **runner** (the process the triggers run in): every job forwards a batch of lines each 100 ms
  (``WatermarkTable.update``, the trigger's per-batch call) and the table is serialised once a
  second (``to_text``, what ``watermark_store.WatermarkWriter`` sends);
* **supervisor** (the triggerer's main process, which answers the runner): one ``PutVariable``
  of that text per second through ``request_handlers.handle_put_variable`` and the in-process
  execution API, as ``TriggerRunnerSupervisor._handle_request`` does.

For comparison it also times the alternative not taken, one small write per job per second
(a small ``PutVariable`` each; a ``SetXCom`` per task instance costs the supervisor about the same).
Figures are CPU seconds per wall second (a fraction of one core), from ``time.process_time``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time


def _setup_airflow() -> None:
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="insight-bench-watermark-")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
    from airflow.utils.db import initdb

    initdb()


def _runner_cost(jobs: int, seconds: float) -> tuple[float, int]:
    """CPU fraction of the runner-side bookkeeping, and the size of one table write."""
    from airflow_insight.compat.supervisor import TaskInstanceRef
    from airflow_insight.triggers.watermark_table import Watermark, WatermarkTable

    table = WatermarkTable()
    refs = [TaskInstanceRef("bench_dag", f"run-{n}", "follow", -1, 1) for n in range(jobs)]
    line = 0
    text = ""
    start_cpu = time.process_time()
    ticks = int(seconds * 10)
    for tick in range(ticks):
        line += 5  # each job forwarded a batch of 5 lines in these 100 ms
        for n, ref in enumerate(refs):
            table.update(ref, Watermark(f"bench.{n:06d}.job", 1, line, 1))
        if tick % 10 == 9 and table.due(tick / 10):  # once a second
            text = table.to_text(time.time())
            table.written(tick / 10)
    cpu = time.process_time() - start_cpu
    return cpu / seconds, len(text.encode())  # per simulated second of wall time


def _supervisor_cost(jobs: int, writes: int) -> tuple[float, float]:
    """CPU seconds per PutVariable of the whole table, and per SetXCom of one job."""
    from airflow.sdk.execution_time import request_handlers as rh
    from airflow.sdk.execution_time.comms import PutVariable
    from airflow.sdk.execution_time.supervisor import InProcessTestSupervisor

    from airflow_insight.compat.supervisor import TaskInstanceRef
    from airflow_insight.triggers.watermark_table import Watermark, WatermarkTable

    table = WatermarkTable()
    for n in range(jobs):
        ref = TaskInstanceRef("bench_dag", f"run-{n}", "follow", -1, 1)
        table.update(ref, Watermark(f"bench.{n:06d}.job", 1, 12345, 1))
    text = table.to_text(time.time())
    client = InProcessTestSupervisor._api_client()
    key = "insight_run_log_watermarks.bench"
    rh.handle_put_variable(client, PutVariable(key=key, value=text, description="bench"))  # warm
    start = time.process_time()
    for _ in range(writes):
        rh.handle_put_variable(client, PutVariable(key=key, value=text, description="bench"))
    per_put = (time.process_time() - start) / writes
    small = json.dumps({"compute_job_id": "bench.000001.job", "last_run_log_line": 1})
    start = time.process_time()
    for n in range(writes):
        rh.handle_put_variable(
            client, PutVariable(key=f"{key}.one.{n}", value=small, description="bench")
        )
    per_small = (time.process_time() - start) / writes
    return per_put, per_small


def main() -> None:
    """Print the figures (and write them as JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--writes", type=int, default=20)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    _setup_airflow()
    runner, size = _runner_cost(args.jobs, args.seconds)
    per_put, per_small = _supervisor_cost(args.jobs, args.writes)
    figures = {
        "jobs": args.jobs,
        "runner_cpu_fraction": runner,
        "table_bytes": size,
        "supervisor_cpu_seconds_per_table_write": per_put,
        "supervisor_cpu_fraction_at_one_write_per_second": per_put,
        "total_cpu_fraction": runner + per_put,
        "supervisor_cpu_seconds_per_single_job_write": per_small,
        "per_job_writes_cpu_fraction_at_one_per_job_per_second": per_small * args.jobs,
    }
    print(f"Watermark persisting at {args.jobs} deferred jobs, one triggerer (SQLite, in-process):")
    print(f"  runner: table updates every 100 ms + one serialisation/s: {runner:.2%} of a core")
    print(f"  one table write: {size / 1024:.0f} KiB; supervisor CPU {per_put * 1000:.1f} ms each")
    print(f"  total at one write a second: {runner + per_put:.2%} of a core")
    print(
        f"  not taken, one small write per job per second: {per_small * 1000:.1f} ms each,"
        f" {per_small * args.jobs:.0%} of a core"
    )
    if args.json:
        with open(args.json, "w") as out:
            json.dump(figures, out, indent=2)


if __name__ == "__main__":
    main()
