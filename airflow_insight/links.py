"""The "Insight job" extra link: from a task instance to its compute job in the Insight web UI.

How the link gets its URL: the operator pushes the job's UI URL to XCom under
:data:`INSIGHT_JOB_URL_XCOM_KEY` right after submitting (before following the job and before
deferring). The link's ``xcom_key`` *is* that key, so the Airflow UI, which reads extra links
straight from XCom, shows the link while the task is still running or deferred. XComs are cleared
before each attempt, so every attempt links to its own job.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow_insight.compat.sdk import BaseOperatorLink, XCom
from airflow_insight.exceptions import ConfigurationError

if TYPE_CHECKING:
    from airflow_insight.compat.sdk import BaseOperator, TaskInstanceKey

#: XCom key under which the operator stores the job's web UI URL (a plain ``str``).
INSIGHT_JOB_URL_XCOM_KEY = "insight_job_url"

#: The default link to a compute job's scenario in the Insight 5 web client. FICO documents no
#: deep-link URL format for the web client; this shape (the web client under ``/insight``, an
#: app, then one of its scenarios) is our choice and can be overridden per connection with the
#: ``ui_job_url_template`` extra. A compute job is backed by a scenario of the Compute Interface
#: app, so the job document's ``app.id`` and ``scenario.id`` name the page to open.
DEFAULT_JOB_URL_TEMPLATE = "{ui_base_url}/insight/app/{app_id}/scenario/{scenario_id}"
#: Used when the job document names the app but not the scenario (e.g. still QUEUED).
_APP_URL_TEMPLATE = "{ui_base_url}/insight/app/{app_id}"
#: Used when the job document names neither: the web client's home page.
_HOME_URL_TEMPLATE = "{ui_base_url}/insight/"

#: Placeholders a ``ui_job_url_template`` may use.
TEMPLATE_FIELDS = frozenset({"ui_base_url", "app_id", "scenario_id", "compute_job_id"})


def job_ui_url(
    ui_base_url: str,
    compute_job_id: str,
    job_document: Mapping[str, Any] | None,
    *,
    template: str | None = None,
) -> str:
    """Build the web UI URL of a compute job.

    ``template`` (the connection's ``ui_job_url_template``) replaces the default shape. When the
    job document lacks an id the template needs (the job is too young to have a scenario), the
    most specific default that can be filled is used instead. Raises ``ConfigurationError`` for a
    template that is malformed or uses an unknown placeholder.
    """
    values = {
        "ui_base_url": ui_base_url.rstrip("/"),
        "compute_job_id": quote(compute_job_id, safe=""),
    }
    # Liberal reader: v2 documents say app/scenario, v1 documents project/parent (§B8).
    app_id = _ref_id(job_document, "app") or _ref_id(job_document, "project")
    scenario_id = _ref_id(job_document, "scenario") or _ref_id(job_document, "parent")
    if app_id:
        values["app_id"] = quote(app_id, safe="")
    if scenario_id:
        values["scenario_id"] = quote(scenario_id, safe="")
    candidates = [template] if template else []
    candidates += [DEFAULT_JOB_URL_TEMPLATE, _APP_URL_TEMPLATE, _HOME_URL_TEMPLATE]
    for candidate in candidates:
        if _placeholders(candidate) <= values.keys():
            return candidate.format_map(values)
    raise AssertionError("unreachable: the home page template needs only ui_base_url")


def _placeholders(template: str) -> set[str]:
    """The placeholder names in ``template``; ConfigurationError when it cannot be used."""
    try:
        names = {
            field for _, field, _, _ in string.Formatter().parse(template) if field is not None
        }
    except ValueError as exc:
        raise ConfigurationError(f"ui_job_url_template {template!r} is malformed: {exc}") from exc
    unknown = names - TEMPLATE_FIELDS
    if unknown:
        raise ConfigurationError(
            f"ui_job_url_template {template!r} uses unknown placeholders {sorted(unknown)}; "
            f"use only {sorted(TEMPLATE_FIELDS)}"
        )
    return names


def _ref_id(document: Mapping[str, Any] | None, field: str) -> str | None:
    reference = document.get(field) if document else None
    if isinstance(reference, Mapping):
        ref_id = reference.get("id")
        if isinstance(ref_id, str) and ref_id:
            return ref_id
    return None


class InsightJobLink(BaseOperatorLink):
    """Extra link "Insight job": opens the task's compute job in the Insight web UI."""

    name = "Insight job"

    @property
    def xcom_key(self) -> str:
        """The operator's own XCom key, so the link works before the task finishes."""
        return INSIGHT_JOB_URL_XCOM_KEY

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """Return the URL the operator pushed for this attempt, or "" before it submitted."""
        url = XCom.get_value(ti_key=ti_key, key=INSIGHT_JOB_URL_XCOM_KEY)
        # Only hand out web links: a stray value must not become a javascript: or file: link.
        if isinstance(url, str) and url.startswith(("https://", "http://")):
            return url
        return ""
