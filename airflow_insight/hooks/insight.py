"""The Airflow hook for FICO Xpress Insight: turns an Airflow connection into settings and clients.

The connection's fields and extras, and how they are read into settings, are described in
:mod:`airflow_insight.settings`; ``settings_from_connection`` and ``base_url`` are re-exported
here (the ``X as X`` imports) for the code that imported them from this module.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowFailException

from airflow_insight.exceptions import ConfigurationError, InsightError
from airflow_insight.protocol.outcome import JobOutcome
from airflow_insight.protocol.runlog import split_run_log
from airflow_insight.settings import KNOWN_EXTRAS as KNOWN_EXTRAS
from airflow_insight.settings import ConnectionLike as ConnectionLike
from airflow_insight.settings import ConnectionSettings
from airflow_insight.settings import base_url as base_url
from airflow_insight.settings import settings_from_connection as settings_from_connection
from airflow_insight.transport.probe import probe_server
from airflow_insight.transport.rest import InsightRestClient


def job_result(settings: ConnectionSettings, outcome: JobOutcome) -> dict[str, Any]:
    """The task's result dict (XCom ``return_value``) for a job's outcome; URLs made absolute.

    The operator and the sensor both return it, so a downstream task reads either alike.
    """
    return {
        "compute_job_id": outcome.compute_job_id,
        "status": outcome.status,
        "model_status": outcome.model_status,
        "execution_attempts": outcome.execution_attempts,
        "result_url": settings.url(outcome.result_url) if outcome.result_url else None,
        "run_log_url": settings.url(outcome.run_log_url) if outcome.run_log_url else None,
    }


def airflow_error(exc: InsightError) -> BaseException:
    """What an Airflow task raises for ``exc``: errors a retry cannot fix fail it at once."""
    if exc.permanent:
        return AirflowFailException(f"{exc} (not retried: a retry cannot fix this)")
    return exc


class InsightHook(BaseHook):
    """Reads an Insight connection and hands out the REST client for it."""

    conn_name_attr = "insight_conn_id"
    default_conn_name = "insight_default"
    conn_type = "insight"
    hook_name = "FICO Xpress Insight"

    def __init__(self, insight_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.insight_conn_id = insight_conn_id
        self._settings: ConnectionSettings | None = None
        self._rest_client: InsightRestClient | None = None

    def get_settings(self) -> ConnectionSettings:
        """Read the Airflow connection (once per hook) and return its settings."""
        if self._settings is None:
            self._settings = settings_from_connection(self.get_connection(self.insight_conn_id))
        return self._settings

    def get_rest_client(self) -> InsightRestClient:
        """The REST client for this connection, created once per hook (it caches the token)."""
        if self._rest_client is None:
            self._rest_client = InsightRestClient(self.get_settings())
        return self._rest_client

    def accepted_model_statuses(self, override: Collection[str] | None = None) -> frozenset[str]:
        """The model statuses counted as success: ``override`` if given, else the connection's."""
        if override is not None:
            return frozenset(override)
        return self.get_settings().accepted_model_statuses

    def job_result(self, outcome: JobOutcome) -> dict[str, Any]:
        """The task's result dict for ``outcome`` (see :func:`job_result`)."""
        return job_result(self.get_settings(), outcome)

    def run_log_after(self, outcome: JobOutcome, last_forwarded_line: int) -> list[str]:
        """The job's run-log lines after ``last_forwarded_line``, read over REST.

        Fills the task log after a wait that did not stream (or missed) the end; a failed fetch
        is logged as a warning and gives no lines (the job's end does not depend on its log).
        No request is made when the outcome says the log is complete and ends at
        ``last_forwarded_line`` (the trigger already forwarded every line).
        """
        if outcome.run_log_url is None:
            return []
        if outcome.run_log_forwarded_through(last_forwarded_line):
            self.log.debug(
                "The run log of %s was forwarded in full; not fetching it again",
                outcome.compute_job_id,
            )
            return []
        try:
            text = self.get_rest_client().get_run_log(
                outcome.run_log_url, compute_job_id=outcome.compute_job_id
            )
        except InsightError as exc:
            self.log.warning("Could not fetch the run log of %s: %s", outcome.compute_job_id, exc)
            return []
        return split_run_log(text)[last_forwarded_line + 1 :]

    def test_connection(self) -> tuple[bool, str]:
        """Mint a token and read it back; Airflow's "Test" button shows the message."""
        try:
            settings = self.get_settings()
        except ConfigurationError as exc:
            return False, str(exc)
        result = probe_server(settings)
        return result.ok, result.message
