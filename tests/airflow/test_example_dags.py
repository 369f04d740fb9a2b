"""Every shipped example DAG imports cleanly: a DAG author copies them first."""

from __future__ import annotations

from pathlib import Path

import pytest

EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "example_dags"
FILES = sorted(EXAMPLE_DAGS.glob("*.py"))


def test_there_are_example_dags() -> None:
    assert len(FILES) >= 3, FILES


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_example_dag_file_imports_without_errors(path: Path) -> None:
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow before 3.2 keeps it with the models
        from airflow.models.dagbag import DagBag

    bag = DagBag(dag_folder=str(path))
    assert bag.import_errors == {}
    assert bag.dags, f"{path.name} defines no DAG"
