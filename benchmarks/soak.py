"""The soak: a day of a triggerer compressed into an hour, with its memory and descriptors.

```bash
.venv/bin/python -m benchmarks.soak --json soak.json               # 60 minutes
.venv/bin/python -m benchmarks.soak --minutes 5 --drop-every 40 --restart-every 100
```

The emulator runs in its own process (:mod:`benchmarks.emulator_proc`) with tokens of a few
seconds and a ping every second; the client is another (:mod:`benchmarks.soak_client`): a steady
stream of deferred jobs followed through ``InsightJobTrigger.run()`` on one loop and one blocking
task following one long job. This process drops every open socket every ``--drop-every`` seconds,
restarts the emulator (same port, jobs kept) every ``--restart-every`` seconds, samples both
processes, and compares each job's lines with the emulator's run log of that job as it ends.

The command always exits 0 unless ``--check`` is given: figures are data. With ``--check`` it exits
1 when a line was lost or repeated, a job ended wrongly or the client's descriptors grew beyond
``--fd-margin`` (never on time, memory or CPU).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import psutil

from airflow_insight.emulator import JobScript
from benchmarks.emulator_proc import EmulatorProcess, script_fields

PREFIX = "soak-"
BLOCKING_JOB_ID = "soak-blocking-task"
#: The client's token lifetime asked for; the emulator's cap (``--token-seconds``) is shorter.
CLIENT_TOKEN_SECONDS = 60
#: A finished job's run log must outlive the parent's comparison; shorter than the soak so that
#: the emulator's memory shows the stream's steady state, not the whole hour's jobs.
FORGET_AFTER_SECONDS = 300.0


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the soak does and how often."""

    minutes: float = 60.0
    job_interval_seconds: float = 2.0
    job_lines: int = 40
    lines_per_second: float = 2.0
    drop_every_seconds: float = 120.0
    restart_every_seconds: float = 600.0
    restart_down_seconds: float = 2.0
    token_seconds: float = 5.0
    ping_seconds: float = 1.0
    sample_every_seconds: float = 60.0
    report_every_seconds: float = 600.0
    fd_margin: int = 20

    @property
    def seconds(self) -> float:
        """The soak's length."""
        return self.minutes * 60.0

    @property
    def job_seconds(self) -> float:
        """Roughly how long one deferred job runs."""
        return self.job_lines / self.lines_per_second + 1.0

    @property
    def stream_jobs(self) -> int:
        """Deferred jobs submitted: the stream stops so that the last one ends in time."""
        usable = max(self.seconds - self.job_seconds - 5.0, self.job_interval_seconds)
        return max(1, int(usable / self.job_interval_seconds))

    def deferred_script(self) -> JobScript:
        """The stream's jobs: a short queue, then lines at a steady pace."""
        return JobScript(
            name="soak-deferred",
            queued_seconds=0.5,
            log_lines=self.job_lines,
            lines_per_second=self.lines_per_second,
            batch_size=2,
            completing_seconds=0.1,
        )

    def blocking_script(self) -> JobScript:
        """The blocking task's job: one line a second for (nearly) the whole soak."""
        return JobScript(
            name="soak-blocking",
            queued_seconds=0.5,
            log_lines=max(10, int(self.seconds - self.job_seconds - 10.0)),
            lines_per_second=1.0,
            batch_size=1,
            completing_seconds=0.1,
        )


# --------------------------------------------------------------------------- comparing


@dataclasses.dataclass
class Tally:
    """Each job's lines against the emulator's, and how each job ended."""

    jobs: int = 0
    lines_expected: int = 0
    lines_received: int = 0
    lost: int = 0
    repeated: int = 0
    out_of_order_jobs: int = 0
    lines_from_rest: int = 0
    wrong_ends: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    line_faults: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def add(self, report: dict[str, Any], expected: Sequence[str]) -> None:
        """One ended job: its status and its lines compared one by one."""
        self.jobs += 1
        received = report.get("lines", [])
        self.lines_expected += len(expected)
        self.lines_received += len(received)
        self.lines_from_rest += int(report.get("rest", 0))
        if report.get("status") != "COMPLETED":
            self.wrong_ends.append({"job": report["job"], "status": report.get("status")})
        lost, repeated = compare_lines(expected, received)
        self.lost += lost
        self.repeated += repeated
        ordered = list(dict.fromkeys(received)) == list(expected)
        if not ordered and not lost:
            self.out_of_order_jobs += 1
        if (lost or repeated or not ordered) and len(self.line_faults) < 20:
            self.line_faults.append(
                {"job": report["job"], "lost": lost, "repeated": repeated, "ordered": ordered}
            )


def compare_lines(expected: Sequence[str], received: Sequence[str]) -> tuple[int, int]:
    """(lines of ``expected`` missing from ``received``, lines received beyond those expected:
    repeats and strangers)."""
    want = collections.Counter(expected)
    got = collections.Counter(received)
    return sum((want - got).values()), sum((got - want).values())


# --------------------------------------------------------------------------- measuring


@dataclasses.dataclass(frozen=True)
class Sample:
    """Both processes at one moment of the soak."""

    at_seconds: float
    client_rss_mb: float
    client_fds: int
    client_cpu_seconds: float
    emulator_rss_mb: float
    jobs_ended: int
    #: The machine's one-minute load average: other work shows up in every figure.
    load_1m: float = 0.0

    @classmethod
    def take(
        cls, at: float, client: psutil.Process, emulator: psutil.Process, ended: int
    ) -> Sample:
        """Read both processes now."""
        times = client.cpu_times()
        return cls(
            at_seconds=round(at, 1),
            client_rss_mb=round(client.memory_info().rss / 2**20, 2),
            client_fds=client.num_fds(),
            client_cpu_seconds=round(times.user + times.system, 2),
            emulator_rss_mb=round(emulator.memory_info().rss / 2**20, 2),
            jobs_ended=ended,
            load_1m=round(os.getloadavg()[0], 2),
        )


def slope_per_hour(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, per hour; None with fewer than 3."""
    if len(points) < 3:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return None
    slope = sum((t - mean_t) * (v - mean_v) for t, v in points) / spread
    return round(slope * 3600.0, 3)


def _slope(samples: Sequence[Sample], name: str) -> float | None:
    return slope_per_hour([(s.at_seconds, float(getattr(s, name))) for s in samples])


def milestones(samples: Sequence[Sample], every: float) -> list[Sample]:
    """The first sample, the first at or after each ``every`` seconds, and the last."""
    if not samples:
        return []
    chosen = [samples[0]]
    mark = every
    for sample in samples[1:-1]:
        if sample.at_seconds >= mark:
            chosen.append(sample)
            while mark <= sample.at_seconds:
                mark += every
    if samples[-1] is not chosen[-1]:
        chosen.append(samples[-1])
    return chosen


# --------------------------------------------------------------------------- running


class ClientProcess:
    """The soak client in its own process; its stdout lines arrive on a queue."""

    def __init__(self, arguments: dict[str, Any], stderr_path: str) -> None:
        self._stderr = open(stderr_path, "w")  # noqa: SIM115 - closed in stop()
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.soak_client", json.dumps(arguments)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            cwd=root,
            env=env,
        )
        self.psutil = psutil.Process(self.process.pid)
        self.messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, name="soak-client-reader", daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("{"):
                self.messages.put(json.loads(line))
        self.messages.put(None)

    def next_messages(self, wait_seconds: float) -> Iterator[dict[str, Any] | None]:
        """Messages that arrived, waiting at most ``wait_seconds`` for the first."""
        try:
            yield self.messages.get(timeout=max(0.0, wait_seconds))
        except queue.Empty:
            return
        while True:
            try:
                yield self.messages.get_nowait()
            except queue.Empty:
                return

    def stop(self) -> int:
        """Let the client exit (close its stdin); kill it if it does not."""
        try:
            assert self.process.stdin is not None
            self.process.stdin.close()
            code = self.process.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            code = self.process.wait(timeout=10)
        self._stderr.close()
        return code


@dataclasses.dataclass
class Soak:
    """One soak run: the schedule of faults, the samples and the tally."""

    plan: Plan
    work_dir: str
    tally: Tally = dataclasses.field(default_factory=Tally)
    samples: list[Sample] = dataclasses.field(default_factory=list)
    events: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    done: dict[str, Any] = dataclasses.field(default_factory=dict)
    ready: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: What the emulator saw (frames by kind, requests by path), summed over the samples.
    traffic: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    _counted_until: float = 0.0

    def run(self) -> dict[str, Any]:
        """Start both processes, run the schedule until the client is done; the figures."""
        plan = self.plan
        emulator = EmulatorProcess(
            token_max_age_cap_seconds=plan.token_seconds,
            ping_interval_seconds=plan.ping_seconds,
            forget_finished_jobs_after_seconds=FORGET_AFTER_SECONDS,
            record_messages=False,
        ).start()
        try:
            emulator.rules(
                [
                    (f"{PREFIX}0*", script_fields(plan.deferred_script())),
                    (BLOCKING_JOB_ID, script_fields(plan.blocking_script())),
                ]
            )
            return self._run_with(emulator)
        finally:
            emulator.stop()

    def _run_with(self, emulator: EmulatorProcess) -> dict[str, Any]:
        plan = self.plan
        client = ClientProcess(
            {
                "base_url": emulator.base_url,
                "extras": {"max_age_seconds": CLIENT_TOKEN_SECONDS},
                "prefix": PREFIX,
                "jobs": plan.stream_jobs,
                "job_interval_seconds": plan.job_interval_seconds,
                "blocking_job_id": BLOCKING_JOB_ID,
                "log_path": os.path.join(self.work_dir, "client-log.jsonl"),
            },
            os.path.join(self.work_dir, "client-stderr.txt"),
        )
        emulator_process = psutil.Process(emulator.pid)
        load_start = os.getloadavg()
        started = time.monotonic()
        exit_code: int | None = None
        try:
            self._loop(emulator, client, emulator_process, started)
        finally:
            exit_code = client.stop()
        return self._figures(started, load_start, exit_code)

    def _loop(
        self,
        emulator: EmulatorProcess,
        client: ClientProcess,
        emulator_process: psutil.Process,
        started: float,
    ) -> None:
        plan = self.plan
        deadline = started + plan.seconds + max(600.0, plan.seconds * 0.25)
        zero = started
        next_sample = next_drop = next_restart = float("inf")
        while time.monotonic() < deadline:
            now = time.monotonic()
            wait = min(next_sample, next_drop, next_restart, now + 1.0) - now
            for message in client.next_messages(wait):
                if message is None:
                    self.events.append({"at": now - zero, "event": "client exited early"})
                    return
                if message.get("ready"):
                    self.ready = message
                    zero = time.monotonic()
                    next_sample = zero
                    next_drop = zero + plan.drop_every_seconds
                    next_restart = zero + plan.restart_every_seconds
                elif message.get("done"):
                    self.done = message
                    self._sample(emulator, client, emulator_process, zero)
                    return
                else:
                    self._compare(emulator, message)
            now = time.monotonic()
            if now >= next_sample:
                self._sample(emulator, client, emulator_process, zero)
                next_sample += plan.sample_every_seconds
            if now >= next_restart:
                emulator.call("restart", down_seconds=plan.restart_down_seconds)
                self.events.append({"at": round(now - zero, 1), "event": "emulator restarted"})
                next_restart += plan.restart_every_seconds
                next_drop = max(next_drop, now + plan.drop_every_seconds / 2)
            elif now >= next_drop:
                dropped = emulator.call("drop_sockets")["dropped"]
                self.events.append({"at": round(now - zero, 1), "event": f"dropped {dropped}"})
                next_drop += plan.drop_every_seconds
        self.events.append({"at": time.monotonic() - zero, "event": "deadline passed"})

    def _compare(self, emulator: EmulatorProcess, report: dict[str, Any]) -> None:
        if report.get("mode") == "submit":
            self.tally.wrong_ends.append({"job": report["job"], "status": report["status"]})
            return
        expected = emulator.call("run_log", job_id=report["job"])["lines"]
        self.tally.add(report, expected)

    def _sample(
        self, emulator: EmulatorProcess, client: ClientProcess, process: psutil.Process, zero: float
    ) -> None:
        self._count_traffic(emulator)
        try:
            sample = Sample.take(time.monotonic() - zero, client.psutil, process, self.tally.jobs)
        except psutil.Error:
            return
        self.samples.append(sample)

    def _count_traffic(self, emulator: EmulatorProcess) -> None:
        """Add what the emulator recorded since the last count (its record is bounded, so it
        is read a window at a time)."""
        since, until = self._counted_until, emulator.call("now")["now"]
        window = {"since": since, "until": until}
        self.traffic.update(emulator.call("frames", **window)["counts"])
        self.traffic.update(emulator.call("requests", **window)["counts"])
        self._counted_until = until

    def _figures(
        self, started: float, load_start: tuple[float, float, float], exit_code: int | None
    ) -> dict[str, Any]:
        plan, tally, samples = self.plan, self.tally, self.samples
        first, last = (samples[0], samples[-1]) if samples else (None, None)
        warm = [s for s in samples if s.at_seconds >= min(600.0, plan.seconds / 6)]
        cpu = None
        if self.done and self.ready and tally.jobs:
            cpu = (self.done["cpu_seconds"] - self.ready["cpu_seconds"]) / tally.jobs
        fd_growth = None if first is None or last is None else last.client_fds - first.client_fds
        correct = (
            bool(self.done)
            and tally.lost == 0
            and tally.repeated == 0
            and not tally.wrong_ends
            and tally.jobs == plan.stream_jobs + 1
        )
        return {
            "plan": dataclasses.asdict(plan) | {"stream_jobs": plan.stream_jobs},
            "wall_seconds": round(time.monotonic() - started, 1),
            "load_average_start": load_start,
            "load_average_end": os.getloadavg(),
            "client_exit_code": exit_code,
            "client_done": self.done,
            "jobs_ended": tally.jobs,
            "jobs_expected": plan.stream_jobs + 1,
            "lines_expected": tally.lines_expected,
            "lines_received": tally.lines_received,
            "lines_lost": tally.lost,
            "lines_repeated": tally.repeated,
            "jobs_out_of_order": tally.out_of_order_jobs,
            "lines_read_over_rest": tally.lines_from_rest,
            "wrong_ends": len(tally.wrong_ends),
            "wrong_end_examples": tally.wrong_ends[:20],
            "line_fault_examples": tally.line_faults,
            "cpu_seconds_per_job": None if cpu is None else round(cpu, 4),
            "client_fd_growth": fd_growth,
            "fd_leak": fd_growth is not None and fd_growth > plan.fd_margin,
            "correct": correct,
            "slopes_per_hour": {
                name: {"all": _slope(samples, name), "after_warm_up": _slope(warm, name)}
                for name in ("client_rss_mb", "client_fds", "emulator_rss_mb")
            },
            "milestones": [
                dataclasses.asdict(s) for s in milestones(samples, plan.report_every_seconds)
            ],
            "samples": [dataclasses.asdict(s) for s in samples],
            "faults": self.events,
            "emulator_saw": dict(sorted(self.traffic.items())),
        }


# --------------------------------------------------------------------------- the command


def render(figures: dict[str, Any]) -> str:
    """The figures as a few lines of text."""
    lines = [
        f"jobs ended {figures['jobs_ended']}/{figures['jobs_expected']}"
        f"  wrong ends {figures['wrong_ends']}"
        f"  lines {figures['lines_received']}/{figures['lines_expected']}"
        f"  lost {figures['lines_lost']}  repeated {figures['lines_repeated']}"
        f"  (read over REST {figures['lines_read_over_rest']})",
        f"cpu per job {figures['cpu_seconds_per_job']} s"
        f"  fd growth {figures['client_fd_growth']}  correct {figures['correct']}",
        f"load {figures['load_average_start']} -> {figures['load_average_end']}",
        "   at_s  client_rss_mb  client_fds  emulator_rss_mb  jobs_ended  load_1m",
    ]
    for row in figures["milestones"]:
        lines.append(
            f"{row['at_seconds']:7.0f}  {row['client_rss_mb']:13.1f}  {row['client_fds']:10d}"
            f"  {row['emulator_rss_mb']:15.1f}  {row['jobs_ended']:10d}  {row['load_1m']:7.1f}"
        )
    for name, slopes in figures["slopes_per_hour"].items():
        lines.append(f"slope per hour {name}: {slopes}")
    lines.append(f"the emulator saw: {figures['emulator_saw']}")
    return "\n".join(lines)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults = Plan()
    parser = argparse.ArgumentParser(prog="benchmarks.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=defaults.minutes)
    parser.add_argument("--job-interval", type=float, default=defaults.job_interval_seconds)
    parser.add_argument("--drop-every", type=float, default=defaults.drop_every_seconds)
    parser.add_argument("--restart-every", type=float, default=defaults.restart_every_seconds)
    parser.add_argument("--token-seconds", type=float, default=defaults.token_seconds)
    parser.add_argument("--sample-every", type=float, default=defaults.sample_every_seconds)
    parser.add_argument("--report-every", type=float, default=defaults.report_every_seconds)
    parser.add_argument("--fd-margin", type=int, default=defaults.fd_margin)
    parser.add_argument("--json", help="write the figures (and every sample) here")
    parser.add_argument("--check", action="store_true", help="exit 1 unless correct")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the soak, print the figures, write the JSON."""
    options = _parse(argv)
    plan = Plan(
        minutes=options.minutes,
        job_interval_seconds=options.job_interval,
        drop_every_seconds=options.drop_every,
        restart_every_seconds=options.restart_every,
        token_seconds=options.token_seconds,
        sample_every_seconds=options.sample_every,
        report_every_seconds=options.report_every,
        fd_margin=options.fd_margin,
    )
    with tempfile.TemporaryDirectory(prefix="insight-soak-") as work_dir:
        figures = Soak(plan, work_dir).run()
        if not figures["correct"]:
            figures["client_stderr_tail"] = _tail(os.path.join(work_dir, "client-stderr.txt"))
            figures["client_log_tail"] = _tail(os.path.join(work_dir, "client-log.jsonl"))
    print(render(figures), flush=True)
    if options.json:
        with open(options.json, "w") as handle:
            json.dump(figures, handle, indent=1)
    if options.check and (not figures["correct"] or figures["fd_leak"]):
        return 1
    return 0


def _tail(path: str, characters: int = 4000) -> str:
    try:
        with open(path) as handle:
            return handle.read()[-characters:]
    except OSError:
        return ""


if __name__ == "__main__":
    sys.exit(main())
