"""The per-job half of the core's decisions: statuses, how a job ends, and its REST checks.

A :class:`JobTracker` holds every followed job (:class:`~.jobs.FollowedJob`), applies what the
socket or REST says about each, decides when a job has ended and whether its run log must still
be fetched, and keeps the REST check schedule. It asks for REST work through the
:class:`~.calls.OutstandingCalls` it shares with the :class:`~.follower.Follower`, never twice
for one kind and job. Decisions where the protocol is silent:

* The first terminal status wins: a later non-terminal one never un-finishes a job, and a later
  different terminal one is ignored (e.g. ``DELETED`` after ``COMPLETED`` is the cleanup, not the
  job's end). Non-terminal statuses may go "backwards" (a requeued job returns to ``QUEUED``).
* A terminal status asks for the REST run log (``RunLogFetchDue``) when a ``runLogUrl`` is known;
  without one (a job cancelled while queued) the job finishes at once. ``RUNLOG_COMPLETED`` is
  never waited for.
* The complete-log shortcut: ``RUNLOG_COMPLETED`` says how many lines the log has
  (``totalLines``); when every line up to ``totalLines - 1`` was forwarded without a gap, none
  was given up and none waits in the buffer, the job finishes at its terminal status without the
  REST fetch (one full-log transfer saved per job; the outcome says ``run_log_complete``).
  Anything else still fetches: no ``RUNLOG_COMPLETED``, a gap, buffered lines, a total that
  disagrees with what was forwarded, a total from an earlier execution attempt (forgotten when
  ``executionAttempts`` grows), or a server that restarted line numbers for a new attempt.
* A terminal status that arrives *before* ``RUNLOG_COMPLETED`` fetches at once (never waiting,
  §A6), except as ``CURRENT_JOB_STATUS``, the answer to ``SUBSCRIBE`` for a job that ended
  before we subscribed: its replay follows at once, so the fetch waits ``REPLAY_GRACE_SECONDS``
  (at most the silence limit) for it. If ``RUNLOG_COMPLETED`` (or the last missing lines) then
  arrives while the fetch is due or outstanding and makes the log complete, the job finishes
  right then, and the fetch's answer is ignored when it comes: the fetch is the safe path, the
  shortcut only ever ends it early.
* ``COMPUTE_JOB_NOT_FOUND`` asks for a REST check of that job; without a ``computeJobId`` it asks
  for all followed jobs. A 404 over REST (:meth:`JobTracker.job_gone`) before any terminal
  status finishes the job as ``DELETED`` without fetching the run log (it went with the job).
* Liveness: a followed job not heard of for ``silence_limit_seconds`` (socket or REST) is
  checked over REST, so a silent but healthy socket degrades into REST polling at that pace.
  While the socket is down, checks follow the reconnect backoff, capped at the silence limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_insight.exceptions import InsightError, RemoteProtocolError
from airflow_insight.protocol import messages as m
from airflow_insight.protocol.appmessages import AppMessageHandler
from airflow_insight.protocol.calls import OutstandingCalls, Purpose
from airflow_insight.protocol.config import FollowerConfig
from airflow_insight.protocol.events import (
    Event,
    FollowFailed,
    JobFinished,
    JobRequeued,
    MessageIgnored,
    MessageRejected,
    ReconcileDue,
    RunLogFetchDue,
    StatusChanged,
)
from airflow_insight.protocol.jobs import CheckSchedule, FollowedJob, Phase, StatusFields
from airflow_insight.protocol.outcome import JobOutcome
from airflow_insight.protocol.runlog import RunLog
from airflow_insight.protocol.session import Session
from airflow_insight.protocol.statuses import JobStatus, is_terminal

__all__ = ["REPLAY_GRACE_SECONDS", "JobTracker"]

#: How long a job found ended by the answer to ``SUBSCRIBE`` waits for the replay that follows
#: before its run log is fetched over REST (see the module docstring).
REPLAY_GRACE_SECONDS = 1.0


class JobTracker:
    """The followed jobs and their REST checks; see the module docstring."""

    def __init__(self, config: FollowerConfig, session: Session, calls: OutstandingCalls) -> None:
        self.config = config
        self._session = session
        self._calls = calls
        self.jobs: dict[str, FollowedJob] = {}
        #: The jobs not finished yet, so per-step work never walks the finished ones.
        self.running: dict[str, FollowedJob] = {}
        self._checks = CheckSchedule(self.running)

    # ----------------------------------------------------------------------------- following

    def add(
        self,
        job_id: str,
        *,
        execution_attempts: int,
        last_run_log_line: int,
        now: float,
        app_messages: AppMessageHandler | None,
    ) -> FollowedJob:
        """Start following a job (not followed yet)."""
        run_log = RunLog(
            job_id,
            execution_attempts=execution_attempts,
            last_forwarded_line=last_run_log_line,
            tail_lines=self.config.run_log_tail_lines,
            max_buffered_lines=self.config.max_buffered_lines,
        )
        job = FollowedJob(job_id, run_log, next_check_at=now + self.config.silence_limit_seconds)
        job.app_messages = app_messages
        self.jobs[job_id] = job
        self.running[job_id] = job
        self._checks.set(job, job.next_check_at)
        return job

    def offer_handler(self, job_id: str, app_messages: AppMessageHandler | None) -> None:
        """Another follow of ``job_id`` (a second watcher) offers its callback handler.

        Each callback gets one answer, so one handler answers: the first one registered for the
        job keeps answering; a later one is taken only when none was (a sensor's watch first,
        then an operator's with solver progress).
        """
        job = self.jobs[job_id]
        if job.app_messages is None:
            job.app_messages = app_messages

    def remove(self, job_id: str) -> None:
        """Forget a job; later messages about it are ignored."""
        self.jobs.pop(job_id, None)
        self.running.pop(job_id, None)

    def following_phase(self) -> list[FollowedJob]:
        """The running jobs whose terminal status is not known yet."""
        return [job for job in self.running.values() if job.phase is Phase.FOLLOWING]

    def live(self, job_id: str | None) -> FollowedJob | None:
        """The followed job ``job_id`` if it has not finished."""
        job = self.jobs.get(job_id) if job_id is not None else None
        return job if job is not None and job.phase is not Phase.FINISHED else None

    # ----------------------------------------------------------------------------- the socket

    def socket_opened(self, now: float) -> list[FollowedJob]:
        """A socket is open: the jobs to subscribe to, their checks a silence limit away."""
        running = self.following_phase()
        for job in running:
            job.down_checks = 0
            # The CURRENT_JOB_STATUS answer should come well within this window.
            self._checks.set(job, now + self.config.silence_limit_seconds)
        return running

    def socket_lost(self, now: float) -> None:
        """The socket went away: check every job soon (the first backoff delay)."""
        for job in self.following_phase():
            job.down_checks = 0
            self._checks.set(job, min(job.next_check_at, now + self._session.backoff(0)))

    def job_message(
        self, message: m.JobStatusReport | m.RunLogUpdated | m.RunLogCompleted, now: float
    ) -> list[Event]:
        """A status or run-log message about one job."""
        job = self.jobs.get(message.compute_job_id)
        if job is None or job.phase is Phase.FINISHED:
            state = "finished" if job else "not followed"
            reason = f"{type(message).__name__} for job {message.compute_job_id!r} ({state})"
            return [MessageIgnored(reason, message.compute_job_id)]
        if job.phase is Phase.FOLLOWING:
            # Pushes the check on: no heap operation (see CheckSchedule).
            self._checks.set(job, now + self.config.silence_limit_seconds)
        match message:
            case m.JobStatusReport():
                return self._apply_status(job, StatusFields.from_report(message), now)
            case m.RunLogUpdated():
                # Lines arriving after the terminal status are still live lines (§B9 #10).
                events: list[Event] = list(job.run_log.accept(message.start_line, message.lines))
                return events + self._finish_if_fetch_unneeded(job)
            case m.RunLogCompleted():
                if message.total_lines is not None and message.total_lines >= 0:
                    job.total_lines = message.total_lines
                return self._finish_if_fetch_unneeded(job)
        return []  # pragma: no cover - every job message type is handled above

    def not_found(self, job_id: str | None, now: float) -> list[Event]:
        """``COMPUTE_JOB_NOT_FOUND``: ask REST about that job (None: every job) (§B9 #13)."""
        if job_id is None:
            targets = self.following_phase()
        else:
            job = self.jobs.get(job_id)
            targets = [job] if job is not None and job.phase is Phase.FOLLOWING else []
        if not targets:
            reason = f"COMPUTE_JOB_NOT_FOUND for job {job_id!r} (not followed)"
            return [MessageIgnored(reason, job_id)]
        events: list[Event] = []
        for job in targets:
            self._checks.set(job, now + self.config.silence_limit_seconds)
            if not self._calls.pending(Purpose.CHECK, job.job_id):
                events.append(self._ask_check(job.job_id))
        return events

    # ----------------------------------------------------------------------------- REST answers

    def document_received(
        self, job_id: str, document: Mapping[str, Any], now: float
    ) -> list[Event]:
        """A REST job document (the answer to ``ReconcileDue``)."""
        job = self.jobs.get(job_id)
        if job is None or job.phase is Phase.FINISHED:
            return []
        if job.phase is Phase.FOLLOWING:
            self._schedule_check(job, now)
        try:
            fields = StatusFields.from_document(document)
        except RemoteProtocolError as exc:
            return [MessageRejected(f"job {job_id!r}: {exc}")]
        return self._apply_status(job, fields, now)

    def job_gone(self, job_id: str) -> list[Event]:
        """The REST check answered 404: the job no longer exists (§A8, §B9 #13)."""
        job = self.jobs.get(job_id)
        if job is None or job.phase is not Phase.FOLLOWING:
            # Finished, or its terminal status is known and the run-log fetch will finish it.
            return []
        job.status = JobStatus.DELETED.value
        job.detail = "the job no longer exists on the Insight server (HTTP 404)"
        changed = StatusChanged(
            job_id, job.status, job.model_status, job.run_log.execution_attempts
        )
        # The run log went with the job: it is not known complete.
        return [changed, *self._finish(job)]

    def check_failed(self, job_id: str, now: float) -> None:
        """The REST check failed (network, 5xx after retries): ask again on the schedule."""
        job = self.jobs.get(job_id)
        if job is not None and job.phase is Phase.FOLLOWING:
            self._schedule_check(job, now)

    def run_log_fetched(self, job_id: str, text: str) -> list[Event]:
        """The final REST run log (the answer to ``RunLogFetchDue``); the job finishes."""
        job = self.jobs.get(job_id)
        if job is None or job.phase is not Phase.FETCHING_RUN_LOG:
            return []
        filled = job.run_log.fill_from_text(text)
        # Complete unless some line was given up (now, or earlier while streaming).
        return [*filled, *self._finish(job, run_log_complete=not job.run_log.lines_lost)]

    def run_log_unavailable(self, job_id: str) -> list[Event]:
        """The final run log could not be fetched: finish with the lines the socket brought."""
        job = self.jobs.get(job_id)
        if job is None or job.phase is not Phase.FETCHING_RUN_LOG:
            return []
        return self._finish(job)

    def fail(self, job_id: str, error: InsightError) -> list[Event]:
        """Stop following ``job_id``, its last event an error; a job already ended keeps it."""
        job = self.running.get(job_id)
        if job is None:
            return []  # Ended (or unfollowed) while the call was out: its end stands.
        job.move(Phase.FINISHED)
        self.running.pop(job_id, None)
        return [FollowFailed(job_id, error)]

    # ----------------------------------------------------------------------------- time

    def earliest_check(self) -> float | None:
        """When the next REST check or fetch is due."""
        return self._checks.earliest()

    def due_calls(self, now: float) -> list[Event]:
        """The REST checks and run-log fetches due at ``now``."""
        events: list[Event] = []
        while (job := self._checks.pop_due(now)) is not None:
            # Re-asked after the silence limit when the driver never answers.
            self._checks.set(job, now + self.config.silence_limit_seconds)
            if job.phase is Phase.FOLLOWING:
                if not self._calls.pending(Purpose.CHECK, job.job_id):
                    events.append(self._ask_check(job.job_id))
            elif job.run_log_url is not None and not self._calls.pending(
                Purpose.RUN_LOG, job.job_id
            ):
                events.append(self._ask_run_log(job))
        return events

    # ----------------------------------------------------------------------------- internals

    def _ask_check(self, job_id: str) -> ReconcileDue:
        return self._calls.issue(lambda c: ReconcileDue(job_id, c), Purpose.CHECK)

    def _ask_run_log(self, job: FollowedJob) -> RunLogFetchDue:
        url = job.run_log_url or ""
        return self._calls.issue(lambda c: RunLogFetchDue(job.job_id, url, c), Purpose.RUN_LOG)

    def _schedule_check(self, job: FollowedJob, now: float) -> None:
        """Plan the next REST check: the silence limit, or the backoff while the socket is down."""
        interval = self.config.silence_limit_seconds
        if not self._session.is_open:
            interval = min(interval, self._session.backoff(job.down_checks))
            job.down_checks += 1
        self._checks.set(job, now + interval)

    def _apply_status(self, job: FollowedJob, fields: StatusFields, now: float) -> list[Event]:
        if job.phase is not Phase.FOLLOWING:
            return self._after_terminal(job, fields)
        events: list[Event] = []
        attempts = fields.execution_attempts
        if attempts is not None and attempts > job.run_log.execution_attempts:
            if job.run_log.execution_attempts > 0:
                events.append(JobRequeued(job.job_id, attempts))
                # A total sent for the earlier attempt says nothing about the new one.
                job.total_lines = None
            job.run_log.new_attempt(attempts)
        # Null model status and URLs mean "not yet": never erase what an earlier report said.
        job.model_status = fields.model_status or job.model_status
        job.result_url = fields.result_url or job.result_url
        job.run_log_url = fields.run_log_url or job.run_log_url
        if fields.status != job.status:
            job.status = fields.status
            events.append(
                StatusChanged(
                    job.job_id, fields.status, job.model_status, job.run_log.execution_attempts
                )
            )
        if is_terminal(fields.status):
            events.extend(self._job_ended(job, now, replay_follows=fields.current))
        return events

    def _after_terminal(self, job: FollowedJob, fields: StatusFields) -> list[Event]:
        """A status after the terminal one: fill in missing fields, never change the end."""
        if fields.status != job.status:
            reason = f"status {fields.status} for job {job.job_id!r} after terminal {job.status}"
            return [MessageIgnored(reason, job.job_id)]
        job.model_status = job.model_status or fields.model_status
        job.result_url = job.result_url or fields.result_url
        job.run_log_url = job.run_log_url or fields.run_log_url
        return []

    def _job_ended(self, job: FollowedJob, now: float, *, replay_follows: bool) -> list[Event]:
        job.move(Phase.FETCHING_RUN_LOG)
        if job.run_log_url is None or job.socket_brought_whole_log():
            # Never ran (e.g. cancelled while queued): there is no run log to fetch. Or the
            # socket brought every line, as RUNLOG_COMPLETED counts them: nothing to fill.
            return self._finish(job, run_log_complete=job.socket_brought_whole_log())
        if replay_follows:
            # The answer to SUBSCRIBE for a job that ended before we subscribed: the replay of
            # its lines (and RUNLOG_COMPLETED) follows on the socket. Fetch only if it has not
            # completed the log within a short grace (a bounded delay, never a wait for
            # RUNLOG_COMPLETED): one GET saved per job re-attached after its end.
            grace = min(REPLAY_GRACE_SECONDS, self.config.silence_limit_seconds)
            self._checks.set(job, now + grace)
            return []
        self._checks.set(job, now + self.config.silence_limit_seconds)
        return [self._ask_run_log(job)]

    def _finish_if_fetch_unneeded(self, job: FollowedJob) -> list[Event]:
        """After the terminal status, while the fetch is outstanding: end as soon as the
        socket completed the log (the fetch's answer is then ignored)."""
        if job.phase is Phase.FETCHING_RUN_LOG and job.socket_brought_whole_log():
            return self._finish(job, run_log_complete=True)
        return []

    def _finish(self, job: FollowedJob, *, run_log_complete: bool = False) -> list[Event]:
        events: list[Event] = list(job.run_log.flush())
        job.move(Phase.FINISHED)
        self.running.pop(job.job_id, None)
        outcome = JobOutcome(
            compute_job_id=job.job_id,
            status=job.status or JobStatus.DELETED.value,
            model_status=job.model_status,
            execution_attempts=job.run_log.execution_attempts,
            result_url=job.result_url,
            run_log_url=job.run_log_url,
            last_run_log_line=job.run_log.last_forwarded_line,
            run_log_tail=job.run_log.tail,
            detail=job.detail,
            run_log_complete=run_log_complete and not job.run_log.lines_lost,
        )
        events.append(JobFinished(outcome))
        return events
