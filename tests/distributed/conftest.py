"""The distributed test bed, started once for the session and shared by the cases.

Postgres and Redis (Debian's packages), api-server, scheduler, dag-processor, two triggerers and
two Celery workers, and the Insight emulator in this process; see ``distributed_bed.py``. Where
Postgres or Redis is not installed the cases skip and say which; in CI (``CI=true``) they fail
instead, since CI installs both (``.ci/run``).
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed_bed import (
    FANOUT,
    LONG,
    LONGER,
    STALL,
    TOGETHER,
    Bed,
    Unavailable,
    postgres_bin,
    redis_server,
    started_bed,
)

from airflow_insight.emulator import Emulator, EmulatorConfig


def _require_servers() -> None:
    try:
        postgres_bin()
        redis_server()
        import airflow.providers.celery  # noqa: F401
        import psycopg2  # noqa: F401
    except (Unavailable, ImportError) as exc:
        reason = f"distributed test bed unavailable: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI must run these cases: see .ci/run)", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def bed() -> Iterator[Bed]:
    """The running deployment (about a minute to start on 2 cores)."""
    _require_servers()
    emulator = Emulator(EmulatorConfig(record_limit=None, default_script=LONG)).start()
    emulator.add_script("dist_fanout.*", FANOUT)
    emulator.add_script("dist_log_stall.*", STALL)
    emulator.add_script("dist_end_together.*", TOGETHER)
    emulator.add_script("dist_term_worker.*", LONGER)
    emulator.add_script("dist_kill_worker.*", LONGER)
    root = Path(tempfile.mkdtemp(prefix="insight-distributed-"))
    # A SIGTERM to pytest (e.g. from `timeout`) still stops the bed: it unwinds like Ctrl-C.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with started_bed(emulator, root) as running:
            yield running
    finally:
        if os.environ.get("INSIGHT_KEEP_BED") != "1":  # keep the logs to read them after a run
            shutil.rmtree(root, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
