"""A compute job as the emulator holds it: request, status, run log, results (§B3.4)."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from typing import Any

from airflow_insight.emulator.callbacks import PendingAppMessage, SolveSession
from airflow_insight.emulator.scripts import JobScript
from airflow_insight.protocol.messages import JobStatusReport
from airflow_insight.protocol.statuses import is_terminal

#: The id of the Compute Interface app every compute job's scenario belongs to (§B3.4).
COMPUTE_INTERFACE_APP_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "compute-interface-app"))


@dataclasses.dataclass
class Job:
    """One compute job. Mutated only on the emulator's event loop."""

    id: str
    request: dict[str, Any]
    script: JobScript
    payload: bytes | None
    run_log_messages: bool
    status: str = "QUEUED"
    model_status: str | None = None
    execution_attempts: int = 1
    # A compute job is backed by a scenario of the Compute Interface app (§B3.4): the URLs
    # point at scenario resources.
    scenario_id: str = dataclasses.field(default_factory=lambda: str(uuid.uuid4()))
    payload_attachment_id: str = dataclasses.field(default_factory=lambda: str(uuid.uuid4()))
    result_attachment_id: str = dataclasses.field(default_factory=lambda: str(uuid.uuid4()))
    run_log_published: bool = False
    log: list[str] = dataclasses.field(default_factory=list)
    #: Highest line number already handed to the push path (pushed or not).
    flushed_upto: int = -1
    results_zip: bytes | None = None
    #: The socket this job's events go to (connection-id header or latest SUBSCRIBE).
    connection_id: str | None = None
    task: asyncio.Task[None] | None = None
    #: A RUNLOG_UPDATED text held back by the out-of-order fault.
    held_texts: list[str] = dataclasses.field(default_factory=list)
    #: The running real solve's link to its thread (callbacks, interrupt), if any.
    session: SolveSession | None = None
    #: The APP_MESSAGE waiting for its answer (one at a time: the solve is paused).
    pending_app_message: PendingAppMessage | None = None
    #: appMessageId -> incumbent file of an INTSOL message (appMessageFile), latest kept.
    app_message_files: dict[str, bytes] = dataclasses.field(default_factory=dict)

    def app_message_limit(self, default_seconds: float) -> float:
        """How long an APP_MESSAGE of this job may wait for its answer."""
        limit = self.script.app_message_timeout_seconds
        return default_seconds if limit is None else limit

    def app_message_file_url(self, app_message_id: str) -> str:
        """Server-relative URL of an APP_MESSAGE's file (§B3.1)."""
        return f"/api/compute-jobs/{self.id}/messages/{app_message_id}/file"

    @property
    def terminal(self) -> bool:
        """True once the job reached a terminal status."""
        return is_terminal(self.status)

    @property
    def payload_url(self) -> str:
        """Server-relative URL of the submitted zip."""
        return f"/api/scenarios/{self.scenario_id}/attachments/{self.payload_attachment_id}/file"

    @property
    def run_log_url(self) -> str | None:
        """Server-relative run-log URL: set once the job left QUEUED for the first time."""
        return f"/api/scenarios/{self.scenario_id}/run-log" if self.run_log_published else None

    @property
    def result_url(self) -> str | None:
        """Server-relative results URL: set at COMPLETED."""
        if self.status != "COMPLETED" or self.results_zip is None:
            return None
        return f"/api/scenarios/{self.scenario_id}/attachments/{self.result_attachment_id}/file"

    @property
    def job_metrics_url(self) -> str:
        """Server-relative job-metrics URL."""
        return f"/api/scenarios/{self.scenario_id}/job-metrics"

    def report(self, *, current: bool = False) -> JobStatusReport:
        """The job's status as a status message."""
        return JobStatusReport(
            compute_job_id=self.id,
            status=self.status,
            model_status=self.model_status,
            execution_attempts=self.execution_attempts,
            payload_url=self.payload_url if self.payload is not None else None,
            result_url=self.result_url,
            run_log_url=self.run_log_url,
            job_metrics_url=self.job_metrics_url,
            current=current,
        )

    def document(self) -> dict[str, Any]:
        """The job document GET /api/compute-jobs/{id} answers with (§B3.4)."""
        request = self.request
        app_id = COMPUTE_INTERFACE_APP_ID
        return {
            "id": self.id,
            "objectType": "COMPUTE_JOB",
            "computeJobType": request["computeJobType"],
            "url": f"/api/compute-jobs/{self.id}",
            "app": {
                "objectType": "APP",
                "id": app_id,
                "url": f"/api/apps/{app_id}",
                "name": "Compute Interface",
            },
            "scenario": {
                "objectType": "SCENARIO",
                "id": self.scenario_id,
                "url": f"/api/scenarios/{self.scenario_id}",
                "name": self.id,
            },
            "owner": request["owner"],
            "dependency": request.get("dependency"),
            "runLogMessages": self.run_log_messages,
            "execution": request["execution"],
            "solver": request["solver"],
            "status": self.status,
            "modelStatus": self.model_status,
            "executionAttempts": self.execution_attempts,
            "payloadUrl": self.payload_url if self.payload is not None else None,
            "resultUrl": self.result_url,
            "runLogUrl": self.run_log_url,
            "jobMetricsUrl": self.job_metrics_url,
        }

    def run_log_text(self) -> str:
        """The whole run log so far, one line per line."""
        return "".join(line + "\n" for line in self.log)
