"""Helpers shared by the ``dag.test()`` test modules of this folder."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import support

from airflow_insight.emulator import Emulator
from airflow_insight.hooks.insight import RUN_LOG_LOGGER

#: The loggers a run-log record is on, as structlog's console renderer shows them: the shared
#: one of operator, sensor and trigger, and the adapters' own ``<class>.run_log`` names.
RUN_LOG_NAMES = (f"[{RUN_LOG_LOGGER}]", "InsightJobTrigger.run_log]", "InsightJobSensor.run_log]")
#: A run-log line as the emulator's job scripts write it, at the end of a record.
_EMULATOR_LINE = re.compile(r": run-log line \d+\s*$")


def _airflow_line() -> tuple[int, int]:
    from packaging.version import Version

    from airflow_insight.compat.sdk import airflow_version

    major, minor = Version(airflow_version()).release[:2]
    return major, minor


#: The installed Airflow's line, for what its ``dag.test()`` shows or does differently.
AIRFLOW_LINE = _airflow_line()
#: Airflow 3.0's ``dag.test()``: structlog unconfigured (no logger names; stdlib records are off
#: the captured console, see ``conftest.capfd``).
CONSOLE_WITHOUT_LOGGER_NAMES = AIRFLOW_LINE == (3, 0)


def load_dags(name: str) -> ModuleType:
    """Import ``dags/<name>.py`` once (dag.test() needs the DAGs in the DAGs folder)."""
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).parent / "dags" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def jobs_of(emulator: Emulator, dag_id: str) -> list[str]:
    """The ids of the compute jobs a DAG's tasks created (derived ids start with the DAG id)."""
    return [job_id for job_id in list(emulator.hub.jobs) if job_id.startswith(f"{dag_id}.")]


def run_log_records(output: str, lines: Sequence[str] = ()) -> list[str]:
    """The console records of forwarded run-log lines, in order.

    From Airflow 3.1 on ``dag.test()`` renders structlog records with their logger name, and a
    run-log record is one on a run-log logger (``RUN_LOG_NAMES``). Airflow 3.0's ``dag.test()``
    leaves structlog unconfigured, so its records carry no logger name: a record is then one that
    ends with an emulator run-log line (``<job>: run-log line N``) or one of ``lines``.
    """
    records = output.splitlines()
    if not CONSOLE_WITHOUT_LOGGER_NAMES:
        return [record for record in records if any(name in record for name in RUN_LOG_NAMES)]
    texts = tuple(line.rstrip() for line in lines)
    return [
        record
        for record in records
        if _EMULATOR_LINE.search(record) or (texts and record.rstrip().endswith(texts))
    ]


def assert_no_secrets(text: str, emulator: Emulator) -> None:
    """Neither the client secret nor any token the emulator issued appears in ``text``."""
    # Airflow 3.0's dag.test() leaves structlog unconfigured, so its SDK prints its own debug
    # records on the console, among them the request that registers the connection's password
    # with the secrets masker. That is Airflow's line, not ours, and a real worker logs at INFO.
    text = "\n".join(line for line in text.splitlines() if "msg=MaskSecret(" not in line)
    support.assert_no_secrets(emulator, text)
