"""The distributed test bed: Postgres, Redis and Airflow with CeleryExecutor, started for real.

Everything runs on 127.0.0.1 with free ports and in temporary directories; every process is
started in its own session (its own process group) and stopped by its id, never by name, since
other Airflow installations may run on the same machine. Postgres refuses to run as root, so as
root it runs as ``nobody`` (``runuser``) with a data directory that user owns.

:class:`Bed` holds the whole set: api-server, scheduler, dag-processor, two triggerers and two
Celery workers, plus the Insight emulator (in this process) that the DAGs' connection points at.
The helpers here read what the cases assert on: the REST API, the metadata DB (which triggerer
holds which trigger) and the task log folder (every log stream of every attempt).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import requests

from airflow_insight.emulator import Emulator, JobScript
from airflow_insight.hooks.insight import RUN_LOG_PREFIX

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
DAGS_FOLDER = Path(__file__).with_name("dags")
#: Airflow's default. A lower value (15 s was tried) lets a triggerer that merely stalls on a
#: loaded machine (its heartbeat recovered after 22.9 s once) be declared dead while it still runs
#: its triggers: both triggerers then follow the same job and its lines appear twice.
TRIGGERER_HEALTH_CHECK_THRESHOLD_SECONDS = 30
#: Lowered from 300 s so that a SIGKILLed worker's task is failed (and retried) soon.
TASK_INSTANCE_HEARTBEAT_TIMEOUT_SECONDS = 30
#: Per triggerer, below the 50 jobs of the fan-out case, so both triggerers must follow some.
TRIGGERER_CAPACITY = 35
TERMINAL_TI_STATES = frozenset({"success", "failed", "upstream_failed", "skipped", "removed"})
#: The 50 jobs of the fan-out case: 200 lines over 20 s each.
FANOUT = JobScript(
    name="dist-fanout", queued_seconds=2.0, log_lines=200, lines_per_second=10.0, batch_size=5
)
#: Case 1b: queued long enough for the trigger to subscribe on a loaded machine, then the whole
#: run log at once. 120 records of about 400 bytes take about 150 KiB of the log socket's 208 KiB
#: (the kernel counts about 1.25 KiB per record), so its trigger runner never blocks on them.
STALL = JobScript(
    name="dist-stall", queued_seconds=20.0, log_lines=120, lines_per_second=0.0, batch_size=120
)
#: The mapped task whose jobs end together: held QUEUED until every map is deferred and followed
#: (the case opens the gate of this name), then the whole run log at once and the end.
TOGETHER = JobScript(
    name="dist-together",
    queued_seconds=0.5,
    hold="dist_end_together",
    log_lines=20,
    lines_per_second=0.0,
)
#: A deferred run to crash and deploy under: 1,200 lines over 60 s.
LONG = JobScript(
    name="dist-long", queued_seconds=1.0, log_lines=1200, lines_per_second=20.0, batch_size=4
)
#: Blocking runs whose worker dies: long enough to outlive Airflow's detection and the retry.
LONGER = dataclasses.replace(LONG, name="dist-longer", log_lines=2400)
_RUN_LOG_LINE = re.compile(r"(?P<job>[A-Za-z0-9_.-]+): run-log line (?P<n>\d+)")
#: A Celery worker's record that it took a task instance's workload (the workload's repr holds the
#: task instance's id), and Celery's own record of how long that task ran.
_WORKLOAD_TAKEN = re.compile(
    r"\[(?P<celery>[0-9a-f-]{36})\] Executing workload in Celery: .*?"
    r"\bti=\w+\(id=UUID\('(?P<ti>[0-9a-f-]{36})'\)"
)
_WORKLOAD_ENDED = re.compile(
    r"Task execute_workload\[(?P<celery>[0-9a-f-]{36})\] \w+ in (?P<seconds>[0-9.e+-]+)s"
)


class Unavailable(Exception):
    """A server this bed needs is not installed here (the tests skip, or fail in CI)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    """Poll ``check`` until it returns something truthy; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except (requests.RequestException, OSError):
            result = None
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def postgres_bin() -> Path:
    """Debian's Postgres server binaries (the newest installed major version)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_major_version)
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        return Path(pg_ctl).resolve().parent
    raise Unavailable("Postgres is not installed (apt-get install postgresql)")


def _major_version(path: str) -> int:
    return int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0


def redis_server() -> str:
    """The redis-server executable."""
    found = shutil.which("redis-server")
    if not found:
        raise Unavailable("Redis is not installed (apt-get install redis-server)")
    return found


def run_checked(command: list[str], **kwargs: Any) -> None:
    """Run a set-up command; fail with the end of its output when it fails."""
    done = subprocess.run(command, capture_output=True, check=False, **kwargs)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).decode(errors="replace")[-3000:]
        raise AssertionError(f"{command[:4]} exited {done.returncode}:\n{output}")


def _as_unprivileged() -> list[str]:
    """The command prefix that drops root for Postgres (nothing when not root)."""
    return ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []


@dataclasses.dataclass
class Postgres:
    """A throw-away Postgres cluster on a free loopback port."""

    root: Path
    port: int = dataclasses.field(default_factory=free_port)

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the ``airflow`` database."""
        return f"postgresql+psycopg2://airflow@127.0.0.1:{self.port}/airflow"

    def start(self) -> Postgres:
        """initdb, start, create the ``airflow`` database (about 3 s)."""
        if os.geteuid() == 0:
            shutil.chown(self.root, "nobody")
        data = str(self.root / "data")
        run_checked(self._command("initdb", "-D", data, "-U", "airflow", "--auth=trust"))
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        log = str(self.root / "pg.log")
        start = self._command("pg_ctl", "-D", data, "-l", log, "-o", options, "-w", "start")
        run_checked(start, start_new_session=True)
        address = ("-h", "127.0.0.1", "-p", str(self.port), "-U", "airflow")
        run_checked(self._command("createdb", *address, "airflow"))
        return self

    def _command(self, program: str, *args: str) -> list[str]:
        return [*_as_unprivileged(), str(postgres_bin() / program), *args]

    def stop(self) -> None:
        """pg_ctl stop (fast mode: this cluster's postmaster, by its pid file); remove the dir."""
        data = self.root / "data"
        if (data / "postmaster.pid").exists():
            stop = self._command("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
            subprocess.run(stop, check=False, capture_output=True, timeout=90)
        shutil.rmtree(self.root, ignore_errors=True)

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Run one read query on the metadata DB."""
        import psycopg2  # test extra; imported late so that a missing one reads as a skip

        with (
            contextlib.closing(
                psycopg2.connect(host="127.0.0.1", port=self.port, user="airflow", dbname="airflow")
            ) as connection,
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, args)
            return list(cursor.fetchall())


@dataclasses.dataclass
class Process:
    """One long-running process in its own session; signalled and stopped by its id only."""

    name: str
    command: list[str]
    env: Mapping[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        """Start it; stdout and stderr go to ``log_path`` (appended across restarts)."""
        with self.log_path.open("ab") as out:
            self.popen = subprocess.Popen(
                self.command,
                env=dict(self.env),
                start_new_session=True,  # its own process group: signalled as a whole below
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self

    @property
    def pid(self) -> int:
        """The main process's id."""
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

    def alive(self) -> bool:
        """Whether the main process still runs."""
        return self.popen is not None and self.popen.poll() is None

    def tree(self) -> list[psutil.Process]:
        """The main process and every descendant (task runners sit in process groups of their
        own, so a group signal alone would miss them)."""
        try:
            main = psutil.Process(self.pid)
            return [main, *main.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def signal_main(self, signum: int) -> None:
        """Send ``signum`` to the main process only."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)

    def signal_group(self, signum: int) -> None:
        """Send ``signum`` to the main process's whole process group."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signum)

    def crash(self) -> None:
        """SIGKILL the whole tree at once, as a node loss or an OOM kill of the container does."""
        for process in self.tree():
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        self.wait(30)

    def wait(self, timeout: float) -> bool:
        """Wait for the main process to end; whether it did."""
        if self.popen is None:
            return True
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM the group, wait, then SIGKILL whatever of the tree is left (by pid)."""
        if self.popen is None:
            return
        tree = self.tree()
        self.signal_group(signal.SIGTERM)
        self.wait(grace)
        for process in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.wait(5)

    def output(self, tail: int = 4000) -> str:
        """The end of what the process wrote."""
        return self.log_path.read_text(errors="replace")[-tail:]


@dataclasses.dataclass
class Bed:
    """The running distributed deployment; see the module docstring."""

    root: Path
    emulator: Emulator
    postgres: Postgres
    redis: Process
    env: dict[str, str]
    api: str
    processes: dict[str, Process] = dataclasses.field(default_factory=dict)
    #: Triggerer name (``triggerer-1``...) -> its Job id in the metadata DB.
    triggerer_ids: dict[str, int] = dataclasses.field(default_factory=dict)
    _token: str | None = None
    _restarts: Counter[str] = dataclasses.field(default_factory=Counter)

    @property
    def home(self) -> Path:
        """AIRFLOW_HOME."""
        return self.root / "airflow"

    @property
    def log_folder(self) -> Path:
        """Where every task attempt's log streams land."""
        return self.home / "logs"

    # ------------------------------------------------------------------ processes

    def start_component(self, name: str, command: list[str]) -> Process:
        """Start one Airflow component with its own log-server ports."""
        env = {
            **self.env,
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        }
        process = Process(name, [AIRFLOW, *command], env, self.root / f"{name}.out").start()
        self.processes[name] = process
        return process

    def start_triggerer(self, name: str) -> Process:
        """Start a triggerer and learn its Job id (the id in its trigger log streams' names)."""
        known = {row[0] for row in self._triggerer_rows()}
        process = self.start_component(name, ["triggerer"])
        job_id = wait_for(
            f"{name} to register",
            lambda: next((i for i, _ in self._triggerer_rows() if i not in known), None),
            120,
        )
        self.triggerer_ids[name] = job_id
        return process

    def _triggerer_rows(self) -> list[tuple[Any, ...]]:
        return self.postgres.query(
            "SELECT id, state FROM job WHERE job_type = 'TriggererJob' AND state = 'running'"
        )

    def start_worker(self, name: str) -> Process:
        """Start a Celery worker (four task slots) and wait until it consumes."""
        process = self.start_component(
            name, ["celery", "worker", "--concurrency", "4", "--celery-hostname", f"{name}@%h"]
        )
        wait_for(f"{name} to be ready", lambda: " ready." in process.output(20000), 180)
        return process

    def restart(self, name: str) -> Process:
        """Start a fresh copy of a component that was stopped or killed (same name)."""
        old = self.processes[name]
        assert not old.alive(), f"{name} still runs"
        self._restarts[name] += 1
        if name.startswith("triggerer"):
            return self.start_triggerer(name)
        if name.startswith("worker"):
            return self.start_worker(name)
        return self.start_component(name, old.command[1:])

    def triggerer_name(self, job_id: int) -> str:
        """The name of the triggerer whose Job id this is."""
        return next(name for name, known in self.triggerer_ids.items() if known == job_id)

    def stop(self) -> None:
        """Stop every component, Redis, Postgres and the emulator (by id)."""
        for process in reversed(list(self.processes.values())):
            process.stop()
        self.redis.stop()
        self.postgres.stop()
        self.emulator.stop()

    # ------------------------------------------------------------------ REST API

    def rest(self, method: str, path: str, **kwargs: Any) -> Any:
        """One call of Airflow's REST API as an admin; the JSON answer."""
        for _ in range(2):
            if self._token is None:
                answer = requests.get(f"{self.api}/auth/token", timeout=10)
                answer.raise_for_status()
                self._token = answer.json()["access_token"]
            response = requests.request(
                method,
                f"{self.api}{path}",
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=30,
                **kwargs,
            )
            if response.status_code == 401:
                self._token = None
                continue
            response.raise_for_status()
            return response.json()
        raise AssertionError(f"{method} {path}: 401 twice")

    def trigger_run(self, dag_id: str) -> str:
        """Start a run of ``dag_id`` (once the dag-processor has parsed it); its run id."""
        wait_for(
            f"DAG {dag_id} to be parsed", lambda: self.rest("GET", f"/api/v2/dags/{dag_id}"), 180
        )
        run: dict[str, Any] = self.rest(
            "POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None}
        )
        return str(run["dag_run_id"])

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        """``{task_id: task instance document}`` of a run."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
        result: dict[str, dict[str, Any]] = {}
        while True:  # pages of at most [api] maximum_page_limit (100)
            query = {"limit": 100, "offset": len(result), "order_by": "id"}
            page = self.rest("GET", path, params=query)
            result.update((ti["task_id"], ti) for ti in page["task_instances"])
            if not page["task_instances"] or len(result) >= page["total_entries"]:
                return result

    def states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """``{task_id: state}`` of a run."""
        return {task: ti["state"] for task, ti in self.task_instances(dag_id, run_id).items()}

    def wait_until_ended(self, dag_id: str, run_id: str, timeout: float) -> dict[str, str | None]:
        """Wait until every task of the run is in a terminal state; the states."""

        def ended() -> dict[str, str | None] | None:
            states = self.states(dag_id, run_id)
            return states if states and set(states.values()) <= TERMINAL_TI_STATES else None

        try:
            result: dict[str, str | None] = wait_for(f"{dag_id} {run_id} to end", ended, timeout, 2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; states now {self.states(dag_id, run_id)}") from None
        return result

    def mark_failed(self, dag_id: str, run_id: str, task_id: str) -> None:
        """What a user does in the UI: PATCH the task instance to ``failed``."""
        self.rest(
            "PATCH",
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}",
            json={"new_state": "failed"},
        )

    # ------------------------------------------------------------------ metadata DB

    def trigger_owners(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """``{task_id: name of the triggerer holding its trigger}`` for deferred tasks."""
        rows = self.postgres.query(
            "SELECT ti.task_id, t.triggerer_id FROM task_instance ti"
            " JOIN trigger t ON ti.trigger_id = t.id WHERE ti.dag_id = %s AND ti.run_id = %s",
            dag_id,
            run_id,
        )
        return {
            task: (None if owner is None else self.triggerer_name(owner)) for task, owner in rows
        }

    # ------------------------------------------------------------------ log streams

    def streams(self, dag_id: str, run_id: str, task_id: str) -> dict[str, list[str]]:
        """Every log stream of every attempt of a task: ``{file name: messages}``.

        ``attempt=N.log`` is the worker's stream, ``attempt=N.log.trigger.<triggerer id>.log``
        each triggerer's. Airflow writes JSON lines; the message is the ``event`` field.
        """
        return {
            name: [message for _, message in records]
            for name, records in self.timed_streams(dag_id, run_id, task_id).items()
        }

    def timed_streams(
        self, dag_id: str, run_id: str, task_id: str
    ) -> dict[str, list[tuple[float | None, str]]]:
        """Like :meth:`streams`, each message with its record's time (epoch seconds)."""
        folder = self.log_folder / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        return {
            path.name: [_record(line) for line in path.read_text(errors="replace").splitlines()]
            for path in sorted(folder.glob("attempt=*"))
        }


def _record(line: str) -> tuple[float | None, str]:
    try:
        record = json.loads(line)
    except ValueError:
        return None, line
    if not isinstance(record, dict):
        return None, line
    try:
        at: float | None = datetime.fromisoformat(record["timestamp"]).timestamp()
    except (KeyError, TypeError, ValueError):
        at = None
    return at, str(record.get("event", line))


def run_log_lines(messages: list[str], job_id: str) -> list[int]:
    """The run-log line numbers of ``job_id`` forwarded in one stream, in order (one record =
    one forwarded line; records that merely quote a line, like an error message, do not count)."""
    numbers = []
    for message in messages:
        match = _RUN_LOG_LINE.fullmatch(message.strip().removeprefix(RUN_LOG_PREFIX))
        if match and match["job"] == job_id:
            numbers.append(int(match["n"]))
    return numbers


def run_log_lines_in(text: str, job_id: str) -> set[int]:
    """The run-log line numbers of ``job_id`` anywhere in a process's console output (a
    component's own log, where records are not JSON)."""
    return {int(m["n"]) for m in _RUN_LOG_LINE.finditer(text) if m["job"] == job_id}


@dataclasses.dataclass(frozen=True)
class LineCount:
    """How one job's run log reached a task's log streams."""

    per_stream: dict[str, Counter[int]]
    expected: int

    @property
    def total(self) -> Counter[int]:
        """Line number -> how often it was forwarded, over every stream."""
        total: Counter[int] = Counter()
        for counts in self.per_stream.values():
            total.update(counts)
        return total

    @property
    def missing(self) -> list[int]:
        """Lines no stream holds."""
        return [n for n in range(self.expected) if self.total[n] == 0]

    @property
    def repeated(self) -> int:
        """Forwarded lines beyond the first copy of each, over every stream."""
        return sum(count - 1 for count in self.total.values() if count > 1)

    def summary(self) -> str:
        """One line for a failure message or the printed figures."""
        streams = ", ".join(f"{name}: {sum(c.values())}" for name, c in self.per_stream.items())
        return (
            f"{self.expected} lines expected; {len(self.missing)} missing,"
            f" {self.repeated} repeated; lines per stream: {streams}"
        )


def count_lines(bed: Bed, dag_id: str, run_id: str, task_id: str, job_id: str) -> LineCount:
    """Count ``job_id``'s run-log lines over every log stream of the task."""
    expected = len(bed.emulator.run_log(job_id))
    per_stream = {
        name: Counter(run_log_lines(messages, job_id))
        for name, messages in bed.streams(dag_id, run_id, task_id).items()
    }
    return LineCount(per_stream, expected)


def worker_runs(bed: Bed) -> dict[str, list[float]]:
    """``{task instance id: [seconds of each Celery task that ran it]}`` over every worker's output
    (see :func:`worker_runs_in`)."""
    return worker_runs_in(_worker_outputs(bed))


def unfinished_worker_runs(bed: Bed, ti_ids: Collection[str]) -> int:
    """How many runs of these task instances the workers took and have not logged the end of
    yet (a task instance's ``end_date`` is set before its worker run has ended)."""
    taken, ended = _worker_records(_worker_outputs(bed))
    return sum(1 for celery_id, ti in taken.items() if ti in ti_ids and celery_id not in ended)


def _worker_outputs(bed: Bed) -> list[str]:
    return [
        process.log_path.read_text(errors="replace")
        for name, process in bed.processes.items()
        if name.startswith("worker")
    ]


def worker_runs_in(outputs: Iterable[str]) -> dict[str, list[float]]:
    """``{task instance id: [seconds of each Celery task that ran it]}`` from Celery workers'
    output: how long each run held a worker slot, by Celery's own count (start-up, the task
    process, its end). A run still going, or one whose end Celery did not log, is left out."""
    taken, ended = _worker_records(outputs)
    runs: dict[str, list[float]] = {}
    for celery_id, ti_id in taken.items():
        if celery_id in ended:
            runs.setdefault(ti_id, []).append(ended[celery_id])
    return runs


def _worker_records(outputs: Iterable[str]) -> tuple[dict[str, str], dict[str, float]]:
    """``({celery task id: task instance id}, {celery task id: seconds it ran})``."""
    taken: dict[str, str] = {}
    ended: dict[str, float] = {}
    for text in outputs:
        taken.update((m["celery"], m["ti"]) for m in _WORKLOAD_TAKEN.finditer(text))
        ended.update((m["celery"], float(m["seconds"])) for m in _WORKLOAD_ENDED.finditer(text))
    return taken, ended


def jobs_of(bed: Bed, dag_id: str, task_id: str) -> list[str]:
    """The compute jobs submitted for a task, in order (its job ids start with dag.task-)."""
    prefix = f"{dag_id}.{task_id}-"
    return [
        entry.compute_job_id
        for entry in bed.emulator.record.of_kind("job_created")
        if entry.compute_job_id and entry.compute_job_id.startswith(prefix)
    ]


def trigger_streams(bed: Bed, dag_id: str, run_id: str, task_id: str) -> list[str]:
    """The names of the task's trigger log streams (one per triggerer that ran its trigger)."""
    return [name for name in bed.streams(dag_id, run_id, task_id) if ".log.trigger." in name]


def socket_overlaps(bed: Bed, connection_ids: set[str | None]) -> int:
    """The largest number of these sockets that were open at the same moment."""
    changes: list[tuple[float, int]] = []
    for entry in bed.emulator.record.entries():
        if entry.connection_id in connection_ids and entry.kind in ("ws_open", "ws_close"):
            changes.append((entry.at, 1 if entry.kind == "ws_open" else -1))
    most = now = 0
    for _, change in sorted(changes, key=lambda c: (c[0], c[1])):
        now += change
        most = max(most, now)
    return most


@dataclasses.dataclass(frozen=True)
class SocketUse:
    """The progress sockets one triggerer used for a set of jobs (from the emulator's record)."""

    jobs: frozenset[str]
    sockets: frozenset[str]
    most_open: int

    def summary(self) -> str:
        """One line for the printed figures."""
        return (
            f"{len(self.jobs)} jobs over {len(self.sockets)} socket(s),"
            f" at most {self.most_open} open at once"
        )


def socket_use(bed: Bed, dag_id: str, run_id: str, task_ids: list[str]) -> dict[str, SocketUse]:
    """``{triggerer job id: SocketUse}``: which triggerer followed which job is read from the
    names of the tasks' trigger log streams, which socket carried it from the SUBSCRIBEs."""
    followed_by: dict[str, set[str]] = {}
    for task in task_ids:
        jobs = jobs_of(bed, dag_id, task)
        for stream in trigger_streams(bed, dag_id, run_id, task):
            followed_by.setdefault(stream.rsplit(".", 2)[-2], set()).update(jobs)
    subscribes = bed.emulator.record.of_kind("subscribe")
    result = {}
    for triggerer, jobs in followed_by.items():
        sockets = {
            e.connection_id for e in subscribes if e.compute_job_id in jobs and e.connection_id
        }
        result[triggerer] = SocketUse(
            frozenset(jobs), frozenset(s for s in sockets if s), socket_overlaps(bed, sockets)
        )
    return result


@contextlib.contextmanager
def started_bed(
    emulator: Emulator,
    root: Path,
    dags_folder: Path = DAGS_FOLDER,
    triggerer_capacity: int = TRIGGERER_CAPACITY,
) -> Iterator[Bed]:
    """Start Postgres, Redis and every Airflow component (DAGs from ``dags_folder``); stop
    them all at the end."""
    # Its own temp dir: as root, Postgres runs as nobody, which must own it (and cannot enter
    # the bed's directory).
    postgres = Postgres(Path(tempfile.mkdtemp(prefix="insight-distributed-pg-")))
    redis_port = free_port()
    redis = Process(
        "redis",
        [
            redis_server(),
            "--port",
            str(redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(root),
        ],
        dict(os.environ),
        root / "redis.out",
    )
    postgres_bin()  # Unavailable before anything starts
    home = root / "airflow"
    home.mkdir()
    api_port = free_port()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        # 2 cores: a few task slots, and deferred tasks free theirs.
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "64",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(
            b"distributed-test-bed-fernet-key!"
        ).decode(),
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": "distributed-test-bed-jwt-secret-" + "x" * 32,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres.url,
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + postgres.url,
        "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(
            TRIGGERER_HEALTH_CHECK_THRESHOLD_SECONDS
        ),
        # A small batch per loop and a capacity below the fan-out spread new triggers over both
        # triggerers (which one claims a new trigger is otherwise a race).
        "AIRFLOW__TRIGGERER__MAX_TRIGGER_TO_SELECT_PER_LOOP": "5",
        "AIRFLOW__TRIGGERER__CAPACITY": str(triggerer_capacity),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(
            TASK_INSTANCE_HEARTBEAT_TIMEOUT_SECONDS
        ),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "3600",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "3600",
        "AIRFLOW_CONN_INSIGHT_DEFAULT": emulator.airflow_connection_json(),
        "PYTHONUNBUFFERED": "1",
    }
    bed = Bed(root, emulator, postgres, redis, env, f"http://127.0.0.1:{api_port}")
    try:
        postgres.start()
        redis.start()
        run_checked([AIRFLOW, "db", "migrate"], env=env)
        bed.start_component("api-server", ["api-server", "--port", str(api_port)])
        bed.start_component("scheduler", ["scheduler"])
        bed.start_component("dag-processor", ["dag-processor"])
        wait_for(
            "the api-server",
            lambda: requests.get(f"{bed.api}/api/v2/monitor/health", timeout=5).ok,
            180,
        )
        bed.start_triggerer("triggerer-1")
        bed.start_triggerer("triggerer-2")
        bed.start_worker("worker-1")
        bed.start_worker("worker-2")
        yield bed
    finally:
        bed.stop()
