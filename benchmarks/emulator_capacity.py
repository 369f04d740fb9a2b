"""Capacity of the emulator: many concurrent sockets and jobs, run-log lines per second.

Run on demand (not part of the test suite)::

    .venv/bin/python benchmarks/emulator_capacity.py --jobs 1000 --lines 2000 --rate 150

It starts the emulator in a separate process (``--serve`` mode of this file), opens one plain
aiohttp WebSocket per job, submits every job with that socket's ``connection-id``, and counts the
run-log lines that arrive. It prints the lines per second received in total, the server's CPU
time, and checks that every socket got every line of its job, in order and exactly once.
Client and server share the machine, so the figures are a lower bound for the server alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

import aiohttp

V2 = "application/vnd.com.fico.xpress.insight.v2+json"
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}


def serve(args: argparse.Namespace) -> None:
    """Run the emulator with the benchmark's job script until stdin closes."""
    from airflow_insight.emulator import Emulator, EmulatorConfig, JobScript

    script = JobScript(
        name="bench",
        queued_seconds=0.5,
        log_lines=args.lines,
        lines_per_second=args.rate,
        batch_size=args.batch,
        completing_seconds=0.05,
        line_template="{job_id} iteration {n}: objective 1234.5678 gap 0.01% time 12s",
    )
    config = EmulatorConfig(
        port=0,
        default_script=script,
        record_messages=False,
        record_limit=10_000,
        send_runlog_completed=False,
    )
    with Emulator(config) as emulator:
        print(emulator.base_url, flush=True)
        sys.stdin.read()  # the parent closes stdin to stop us


async def _token(session: aiohttp.ClientSession, base: str) -> str:
    body = {"clientId": "demo-client", "secret": "demo-secret", "maxAge": 900}
    headers = {"Accept": "text/plain", "Content-Type": V2}
    async with session.post(
        base + "/api/authentication/token", data=json.dumps(body), headers=headers
    ) as response:
        return await response.text()


class Follower:
    """One socket following one job: counts lines and checks their order."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.next_line = 0
        self.lines = 0
        self.errors: list[str] = []
        self.done = asyncio.Event()

    def feed(self, message: dict[str, Any], counter: list[int]) -> None:
        kind = message.get("messageType")
        payload = message.get("messagePayload") or {}
        if kind == "RUNLOG_UPDATED":
            if payload["startLine"] != self.next_line:
                self.errors.append(f"gap/dup at {payload['startLine']} (want {self.next_line})")
            count = len(payload["lines"])
            self.next_line = payload["startLine"] + count
            self.lines += count
            counter[0] += count
        elif kind == "JOB_STATUS_UPDATED" and payload.get("status") in TERMINAL:
            self.done.set()


async def _follow(
    session: aiohttp.ClientSession,
    base: str,
    token: str,
    follower: Follower,
    counter: list[int],
    compress: int,
    ready: asyncio.Queue[str],
) -> None:
    url = base.replace("http", "ws", 1) + "/api/compute-job-messages"
    async with session.ws_connect(
        url, headers={"Authorization": f"Bearer {token}"}, compress=compress, heartbeat=None
    ) as ws:
        assert ws._response is not None
        await ready.put(ws._response.headers["connection-id"])
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            follower.feed(json.loads(message.data), counter)
            if follower.done.is_set():
                break


async def _submit(
    session: aiohttp.ClientSession, base: str, token: str, job_id: str, connection_id: str
) -> None:
    form = aiohttp.FormData()
    document = {"id": job_id, "computeJobType": "SOLVER", "runLogMessages": True}
    form.add_field("computeJobRequest", json.dumps(document), content_type=V2)
    headers = {"Authorization": f"Bearer {token}", "Accept": V2, "connection-id": connection_id}
    async with session.post(base + "/api/compute-jobs", data=form, headers=headers) as response:
        if response.status != 201:
            raise RuntimeError(f"submit {job_id}: {response.status} {await response.text()}")


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(args: argparse.Namespace, base: str, server_pid: int) -> dict[str, Any]:
    """Open the sockets, submit the jobs, count the lines; returns the figures."""
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        token = await _token(session, base)
        counter = [0]
        followers = [Follower(f"bench-{n}") for n in range(args.jobs)]
        tasks = []
        opened = time.monotonic()
        for follower in followers:
            ready: asyncio.Queue[str] = asyncio.Queue()
            tasks.append(
                asyncio.create_task(
                    _follow(session, base, token, follower, counter, args.compress, ready)
                )
            )
            connection_id = await ready.get()
            await _submit(session, base, token, follower.job_id, connection_id)
        sockets_open_seconds = time.monotonic() - opened
        cpu_before = _cpu_seconds(server_pid)
        start, start_lines = time.monotonic(), counter[0]
        peak = 0.0
        last, last_lines = start, counter[0]
        while not all(f.done.is_set() for f in followers):
            await asyncio.sleep(1.0)
            now = time.monotonic()
            rate = (counter[0] - last_lines) / (now - last)
            peak = max(peak, rate)
            last, last_lines = now, counter[0]
            print(f"  {counter[0]:>10} lines  {rate:>10.0f} lines/s", flush=True)
        elapsed = time.monotonic() - start
        cpu = _cpu_seconds(server_pid) - cpu_before
        await asyncio.gather(*tasks, return_exceptions=True)
    errors = [e for f in followers for e in f.errors]
    complete = sum(f.lines == args.lines for f in followers)
    return {
        "jobs_and_sockets": args.jobs,
        "setup_seconds_(open_socket+submit,_sequential)": round(sockets_open_seconds, 2),
        "lines_received": counter[0],
        "streaming_seconds": round(elapsed, 2),
        "mean_lines_per_second": round((counter[0] - start_lines) / elapsed),
        "peak_lines_per_second_(1s_window)": round(peak),
        "server_cpu_seconds": round(cpu, 2),
        "server_cpu_share_of_one_core": round(cpu / elapsed, 2),
        "jobs_with_every_line": complete,
        "order_errors": len(errors),
    }


def main() -> None:
    """Parse arguments; serve, or run the benchmark against a served emulator."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--lines", type=int, default=2000, help="run-log lines per job")
    parser.add_argument("--rate", type=float, default=150.0, help="lines per second per job")
    parser.add_argument("--batch", type=int, default=50, help="lines per RUNLOG_UPDATED")
    parser.add_argument("--compress", type=int, default=0, help="15 = permessage-deflate")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return
    command = [sys.executable, __file__, "--serve", *sys.argv[1:]]
    server = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        base = server.stdout.readline().strip()
        print(f"emulator at {base}; {args.jobs} jobs x {args.lines} lines at {args.rate}/s each")
        figures = asyncio.run(run(args, base, server.pid))
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=30)
    for name, value in figures.items():
        print(f"{name:>48}: {value}")


if __name__ == "__main__":
    main()
