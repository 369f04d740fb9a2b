"""Optional OpenLineage facets: the facet content, and "no OpenLineage, no lineage".

apache-airflow-providers-openlineage is not installed in this project's environment (and must
stay optional), so the facet content is tested as the pure function that builds it, and the
operator's hook method is checked to answer None without error.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_insight import openlineage
from airflow_insight.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from airflow_insight.operators.insight import InsightJobOperator

OPENLINEAGE_INSTALLED = importlib.util.find_spec("airflow.providers.openlineage") is not None
RESULT = {
    "compute_job_id": "daily.solve-0123456789ab",
    "status": "COMPLETED",
    "model_status": "OK",
    "execution_attempts": 2,
    "result_url": "https://insight.example.com/api/results/1",
    "run_log_url": "https://insight.example.com/api/run-log/1",
}


class _TaskInstance:
    """What the OpenLineage listener hands over: only ``xcom_pull`` is used."""

    def __init__(self, xcoms: dict[str, Any]) -> None:
        self.xcoms = xcoms

    def xcom_pull(self, task_ids: str | None = None, key: str = "return_value") -> Any:
        return self.xcoms.get(key)


@pytest.fixture
def connection(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """insight_default for the installed-OpenLineage case (the hook refuses credentials in URLs)."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_INSIGHT_DEFAULT",
        json.dumps(
            {
                "conn_type": "insight",
                "host": "https://insight.example.com:8443/base",
                "login": DEMO_CLIENT_ID,
                "password": DEMO_CLIENT_SECRET,
            }
        ),
    )
    openlineage._facet_class.cache_clear()
    yield
    openlineage._facet_class.cache_clear()


def test_facet_fields_describe_the_job() -> None:
    fields = openlineage.compute_job_facet_fields(RESULT, "https://insight.example.com/")
    assert fields == {
        "computeJobId": "daily.solve-0123456789ab",
        "status": "COMPLETED",
        "modelStatus": "OK",
        "executionAttempts": 2,
        "serverUrl": "https://insight.example.com/",
    }
    assert json.loads(json.dumps(fields)) == fields  # JSON-safe


def test_facet_fields_survive_missing_and_odd_values() -> None:
    odd = {"compute_job_id": "", "status": 3, "execution_attempts": True, "model_status": None}
    assert openlineage.compute_job_facet_fields(odd, None) == {
        "computeJobId": None,
        "status": None,
        "modelStatus": None,
        "executionAttempts": None,
        "serverUrl": None,
    }


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://insight.example.com", "https://insight.example.com"),
        (
            "https://user:secret@insight.example.com:8443/p?token=abc#x",
            "https://insight.example.com:8443/p",
        ),
        ("http://[::1]:8080/insight/", "http://[::1]:8080/insight/"),
        ("http://token@127.0.0.1/", "http://127.0.0.1/"),
        ("", None),
        (None, None),
    ],
)
def test_the_server_url_loses_credentials_query_and_fragment(
    url: str | None, expected: str | None
) -> None:
    assert openlineage.public_url(url) == expected


@pytest.mark.skipif(OPENLINEAGE_INSTALLED, reason="checks the behaviour without OpenLineage")
def test_without_openlineage_the_operator_reports_no_lineage(connection: None) -> None:
    operator = InsightJobOperator(task_id="solve")
    task_instance = _TaskInstance({"return_value": RESULT})
    assert operator.get_openlineage_facets_on_complete(task_instance) is None
    assert openlineage.operator_lineage({"computeJobId": "x"}) is None


@pytest.mark.skipif(
    not OPENLINEAGE_INSTALLED,
    reason="the optional apache-airflow-providers-openlineage is not installed",
)
def test_with_openlineage_the_operator_reports_the_job_facet(connection: None) -> None:
    operator = InsightJobOperator(task_id="solve")
    lineage = operator.get_openlineage_facets_on_complete(_TaskInstance({"return_value": RESULT}))
    facet = lineage.run_facets[openlineage.FACET_NAME]
    assert (facet.computeJobId, facet.status, facet.modelStatus) == (
        "daily.solve-0123456789ab",
        "COMPLETED",
        "OK",
    )
    assert facet.executionAttempts == 2
    assert facet.serverUrl == "https://insight.example.com:8443/base"
    assert facet._schemaURL == openlineage.FACET_SCHEMA_URL
    assert "hunter2" not in repr(lineage) and DEMO_CLIENT_SECRET not in repr(lineage)
