"""The "Insight job" extra link: URL building and the XCom key the Airflow UI reads."""

from __future__ import annotations

import pytest

from airflow_insight.exceptions import ConfigurationError
from airflow_insight.links import INSIGHT_JOB_URL_XCOM_KEY, InsightJobLink, job_ui_url

APP = "00007eff-83f9-05fe-ffff-81007c05fc01"
SCENARIO = "11117eff-83f9-05fe-ffff-81007c05fc02"
JOB = {
    "id": "nightly.plan-7",
    "app": {"objectType": "APP", "id": APP, "url": f"/api/apps/{APP}"},
    "scenario": {"objectType": "SCENARIO", "id": SCENARIO, "url": f"/api/scenarios/{SCENARIO}"},
}


def test_default_shape_opens_the_jobs_scenario() -> None:
    url = job_ui_url("https://insight.example.com/", "nightly.plan-7", JOB)
    assert url == f"https://insight.example.com/insight/app/{APP}/scenario/{SCENARIO}"


def test_v1_document_fields_are_understood() -> None:
    legacy = {"project": {"id": APP}, "parent": {"objectType": "SCENARIO", "id": SCENARIO}}
    url = job_ui_url("https://h", "j", legacy)
    assert url == f"https://h/insight/app/{APP}/scenario/{SCENARIO}"


def test_falls_back_when_the_document_lacks_ids() -> None:
    assert job_ui_url("https://h", "j", {"app": {"id": APP}}) == f"https://h/insight/app/{APP}"
    assert job_ui_url("https://h", "j", None) == "https://h/insight/"
    assert job_ui_url("https://h", "j", {"app": "not-an-object"}) == "https://h/insight/"


def test_template_override_with_all_placeholders_quoted() -> None:
    template = "{ui_base_url}/x?app={app_id}&s={scenario_id}&job={compute_job_id}"
    url = job_ui_url("https://h/", "a b/c", JOB, template=template)
    assert url == f"https://h/x?app={APP}&s={SCENARIO}&job=a%20b%2Fc"


def test_template_needing_missing_ids_falls_back_to_the_default_chain() -> None:
    url = job_ui_url("https://h", "j", None, template="{ui_base_url}/s/{scenario_id}")
    assert url == "https://h/insight/"


@pytest.mark.parametrize("template", ["{ui_base_url}/{scenaro_id}", "{ui_base_url}/{", "{0}"])
def test_bad_template_is_a_configuration_error(template: str) -> None:
    with pytest.raises(ConfigurationError, match="ui_job_url_template"):
        job_ui_url("https://h", "j", JOB, template=template)


def test_link_reads_the_operators_xcom_key() -> None:
    link = InsightJobLink()
    assert link.name == "Insight job"
    # The UI reads extra links from XCom at xcom_key: the operator's key, so the link shows
    # while the task is deferred.
    assert link.xcom_key == INSIGHT_JOB_URL_XCOM_KEY == "insight_job_url"
