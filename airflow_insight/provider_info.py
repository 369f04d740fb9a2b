"""Provider metadata for Airflow's provider discovery; plain data, imports nothing."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    """Return the provider description Airflow reads through the entry point."""
    return {
        "package-name": "airflow-insight",
        "name": "FICO Xpress Insight",
        "description": "Run FICO Xpress Insight compute jobs from Airflow DAGs.",
        "versions": ["0.1.0"],
    }
