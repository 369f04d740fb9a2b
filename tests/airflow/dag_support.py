"""Helpers shared by the ``dag.test()`` test modules of this folder."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from airflow_insight.emulator import DEMO_CLIENT_SECRET, Emulator


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


def assert_no_secrets(text: str, emulator: Emulator) -> None:
    """Neither the client secret nor any token the emulator issued appears in ``text``."""
    assert text
    assert DEMO_CLIENT_SECRET not in text
    tokens = list(emulator.hub.tokens._tokens)  # test-only peek at the issued tokens
    assert tokens
    for token in tokens:
        assert token not in text
