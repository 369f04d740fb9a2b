"""The emulator's shared state and the one path every pushed message takes.

Jobs, sockets, tokens, script rules and faults live here. Everything but the fault registry,
the script rules and the record is touched only on the emulator's event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fnmatch
import functools
import json
import threading
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from airflow_insight.emulator import faults as f
from airflow_insight.emulator.callbacks import AppAnswer, PendingAppMessage
from airflow_insight.emulator.config import EmulatorConfig
from airflow_insight.emulator.jobs import Job
from airflow_insight.emulator.record import Record
from airflow_insight.emulator.scripts import JobScript
from airflow_insight.emulator.sockets import Socket
from airflow_insight.emulator.tokens import TokenStore
from airflow_insight.protocol import messages as m
from airflow_insight.protocol.statuses import is_terminal

F = TypeVar("F")

#: Lines per RUNLOG_UPDATED when replaying after a SUBSCRIBE.
REPLAY_BATCH_LINES = 1000
#: INTSOL files kept per job (the newest); older appMessageFile URLs then answer 404.
APP_MESSAGE_FILES_KEPT = 50


@dataclasses.dataclass
class _ActiveFault:
    fault: f.Fault
    remaining: int | None
    #: Set for faults that came from a job's script: they apply to that job only.
    job_scope: str | None = None


class FaultRegistry:
    """Injected faults and how many more times each fires; thread-safe."""

    def __init__(self) -> None:
        self._active: list[_ActiveFault] = []
        self._lock = threading.Lock()

    def add(self, fault: f.Fault, job_scope: str | None = None) -> None:
        """Arm a fault (``times`` counts from now)."""
        if not isinstance(fault, f.FAULT_TYPES):
            raise TypeError(f"not a fault: {fault!r}")
        with self._lock:
            self._active.append(_ActiveFault(fault, fault.times, job_scope))

    def clear(self, job_scope: str | None = None) -> None:
        """Disarm all global faults, or the faults of one job."""
        with self._lock:
            self._active = [a for a in self._active if a.job_scope != job_scope]

    def take(
        self,
        kind: type[F],
        job_id: str | None = None,
        match: Callable[[F], bool] | None = None,
    ) -> F | None:
        """Fire the first armed fault of ``kind`` that matches, or return None."""
        if not self._active:  # the common case, without taking the lock
            return None
        with self._lock:
            for index, active in enumerate(self._active):
                fault = active.fault
                if not isinstance(fault, kind) or not _job_matches(active, job_id):
                    continue
                if match is not None and not match(fault):
                    continue
                if active.remaining is not None:
                    active.remaining -= 1
                    if active.remaining <= 0:
                        del self._active[index]
                return fault
        return None


def _job_matches(active: _ActiveFault, job_id: str | None) -> bool:
    pattern = getattr(active.fault, "job_id", "*")
    if active.job_scope is None and pattern == "*":
        return True
    if job_id is None:
        return False
    if active.job_scope is not None and active.job_scope != job_id:
        return False
    return fnmatch.fnmatchcase(job_id, pattern)


def _message_type(message: m.ServerMessage) -> str:
    """The wire name of a message, from the codec's own table (one place for the names)."""
    if isinstance(message, m.JobStatusReport) and message.current:
        return message.CURRENT_MESSAGE_TYPE
    if isinstance(message, m.UnknownMessage):
        return message.message_type
    return message.MESSAGE_TYPE


def _edit_payload(text: str, edit: Callable[[dict[str, Any]], None]) -> str:
    document = json.loads(text)
    payload = document.get("messagePayload")
    if isinstance(payload, dict):
        edit(payload)
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


class Hub:
    """Jobs, sockets, tokens, rules and faults, plus pushing messages to sockets."""

    def __init__(self, config: EmulatorConfig, record: Record) -> None:
        self.config = config
        self.record = record
        self.tokens = TokenStore(dict(config.credentials), config.token_max_age_cap_seconds)
        self.faults = FaultRegistry()
        self.jobs: dict[str, Job] = {}
        self.connections: dict[str, Socket] = {}
        self._rules: tuple[tuple[str, JobScript], ...] = ()
        self._rules_lock = threading.Lock()
        #: Tasks started outside a job's own timeline (cancellations), kept from the GC.
        self.background: set[asyncio.Task[None]] = set()
        #: appMessageId -> the job whose APP_MESSAGE waits for that answer.
        self.pending_app_messages: dict[str, Job] = {}
        #: Gate name -> the event held jobs wait for (see ``JobScript.hold``).
        self._gates: dict[str, asyncio.Event] = {}

    # ------------------------------------------------------------------ tokens

    def expire_tokens(self) -> None:
        """Expire every token issued so far; sockets holding one close now (the fault)."""
        self.record.add("fault", {"fault": "expire-tokens"})
        self.tokens.expire_all()
        for connection in list(self.connections.values()):
            connection.token_expired()

    # ------------------------------------------------------------------ scripts

    def add_rule(self, pattern: str, script: JobScript) -> None:
        """Run jobs whose id matches ``pattern`` (fnmatch) with ``script``; later rules win."""
        with self._rules_lock:
            self._rules = (*self._rules, (pattern, script))

    def script_for(self, job_id: str) -> JobScript:
        """The script of the last matching rule, else the default script."""
        for pattern, script in reversed(self._rules):
            if fnmatch.fnmatchcase(job_id, pattern):
                return script
        return self.config.default_script

    def gate(self, name: str) -> asyncio.Event:
        """The gate ``name`` (created closed on first use); held jobs wait for it."""
        return self._gates.setdefault(name, asyncio.Event())

    def open_gate(self, name: str) -> None:
        """Open the gate ``name``: its held jobs go on now, later ones never wait."""
        self.record.add("gate_opened", {"gate": name})
        self.gate(name).set()

    # ------------------------------------------------------------------ pushing

    def connection_of(self, job: Job) -> Socket | None:
        """The open socket the job's events go to, if any."""
        if job.connection_id is None:
            return None
        connection = self.connections.get(job.connection_id)
        if connection is None or connection.closed:
            return None
        return connection

    def push(self, job: Job, message: m.ServerMessage) -> None:
        """Send a message about ``job`` to its socket; without a socket nothing is sent (§A4)."""
        connection = self.connection_of(job)
        if connection is not None:
            self.send_to(connection, job, message)

    def send_to(
        self,
        connection: Socket,
        job: Job,
        message: m.ServerMessage,
        on_sent: Callable[[], None] | None = None,
    ) -> None:
        """Render ``message`` (applying message faults) and queue it on ``connection``.

        ``on_sent`` runs once the message itself has been written to the socket.
        """
        texts, main = self._render(job, message)
        if on_sent is None:
            connection.enqueue(texts, job.id)
            return
        connection.enqueue(texts[:main], job.id)
        connection.enqueue(texts[main : main + 1], job.id, on_sent)
        connection.enqueue(texts[main + 1 :], job.id)

    def _render(self, job: Job, message: m.ServerMessage) -> tuple[list[str], int]:
        """The texts to send for ``message``, and the position of the message's own text."""
        kind = _message_type(message)
        spelling = self.config.spelling
        if self.faults.take(f.LegacyFields, job.id) is not None:
            spelling = m.LEGACY_SPELLING
        texts = self._injected_before(job)
        text = m.encode_server_message(message, spelling)
        text = self._edit_fields(job, kind, text)
        held, job.held_texts = job.held_texts, []
        if kind == m.RunLogUpdated.MESSAGE_TYPE:
            if self.faults.take(f.OutOfOrderRunLog, job.id) is not None:
                self._note_fault(job, "out-of-order-runlog")
                job.held_texts = [text]
                return texts + held, len(texts)  # held back: nothing at that position yet
            if self.faults.take(f.DuplicateRunLog, job.id) is not None:
                self._note_fault(job, "duplicate-runlog")
                texts.append(text)
        texts.append(text)
        return texts + held, len(texts) - 1

    def _injected_before(self, job: Job) -> list[str]:
        texts: list[str] = []
        malformed = self.faults.take(f.MalformedJson, job.id)
        if malformed is not None:
            self._note_fault(job, "malformed-json")
            cut = '{"computeJobId": "' + job.id + '", "messageType": "JOB_STATUS_UPD'
            texts.extend([cut] * max(1, malformed.burst))
        huge = self.faults.take(f.HugeFrame, job.id)
        if huge is not None:
            self._note_fault(job, "huge-frame")
            head = '{"computeJobId": "' + job.id + '", "messageType": "RUNLOG_UPDATED", "pad": "'
            texts.append(head + "x" * int(huge.megabytes * 2**20) + '"}')
        unknown_type = self.faults.take(f.UnknownMessageType, job.id)
        if unknown_type is not None:
            self._note_fault(job, "unknown-message-type")
            texts.append(
                m.encode_server_message(
                    m.UnknownMessage(unknown_type.message_type, job.id, {"detail": "emulated"})
                )
            )
        if self.faults.take(f.UnknownJobMessage, job.id) is not None:
            self._note_fault(job, "unknown-job")
            ghost = m.JobStatusReport(f"no-such-job-{uuid.uuid4().hex[:8]}", "EXECUTING", None, 1)
            texts.append(m.encode_server_message(ghost, self.config.spelling))
        return texts

    def _edit_fields(self, job: Job, kind: str, text: str) -> str:
        def for_kind(fault: f.MissingFields | f.ExtraFields) -> bool:
            return fault.message_type in ("*", kind)

        missing = self.faults.take(f.MissingFields, job.id, for_kind)
        if missing is not None:
            self._note_fault(job, "missing-fields")
            names = missing.fields

            def drop(payload: dict[str, Any]) -> None:
                for name in names:
                    payload.pop(name, None)

            text = _edit_payload(text, drop)
        extra = self.faults.take(f.ExtraFields, job.id, for_kind)
        if extra is not None:
            self._note_fault(job, "extra-fields")
            text = _edit_payload(text, lambda p: p.update(extra.fields))
        return text

    def _note_fault(self, job: Job | None, name: str, **data: Any) -> None:
        self.record.add(
            "fault", {"fault": name, **data}, compute_job_id=None if job is None else job.id
        )

    # ------------------------------------------------------------------ job events

    def set_status(self, job: Job, status: str) -> None:
        """Change the job's status and push JOB_STATUS_UPDATED (or drop its socket instead)."""
        job.status = status
        if status != "QUEUED":
            job.run_log_published = True
        self.record.add(
            "job_status",
            {"status": status, "executionAttempts": job.execution_attempts},
            compute_job_id=job.id,
        )
        if is_terminal(status):
            self._forget_later(job)
        drop = self.faults.take(f.DropSocket, job.id, lambda d: d.status == status)
        if drop is not None:
            connection = self.connection_of(job)
            if connection is not None:
                self._note_fault(job, "drop-socket", status=status)
                connection.drop(drop.close_code)
                return
        self.push(job, job.report())

    def emit_lines(self, job: Job, lines: list[str]) -> None:
        """Append lines to the job's log and push them as one RUNLOG_UPDATED batch."""
        if not lines:
            return
        start = len(job.log)
        job.log.extend(lines)
        job.flushed_upto = len(job.log) - 1
        if job.run_log_messages:
            self.push(job, m.RunLogUpdated(job.id, start, tuple(lines)))

    def replay(self, connection: Socket, job: Job, last_line: int) -> None:
        """Re-send, as RUNLOG_UPDATED batches, the lines after ``last_line`` (§A5)."""
        start = max(last_line + 1, 0)
        for first in range(start, job.flushed_upto + 1, REPLAY_BATCH_LINES):
            stop = min(first + REPLAY_BATCH_LINES, job.flushed_upto + 1)
            batch = m.RunLogUpdated(job.id, first, tuple(job.log[first:stop]))
            self.send_to(connection, job, batch)

    def _forget_later(self, job: Job) -> None:
        """Forget a finished job after the configured time (bounded memory, §B3.7 cleanup)."""
        delay = self.config.forget_finished_jobs_after_seconds
        if delay is None:
            return
        asyncio.get_running_loop().call_later(delay, self.forget, job)

    def forget(self, job: Job) -> None:
        """Drop a finished job (unless it was deleted, replaced or restarted meanwhile)."""
        if self.jobs.get(job.id) is not job or not job.terminal:
            return
        del self.jobs[job.id]
        self.faults.clear(job_scope=job.id)
        self.record.add("job_forgotten", {"status": job.status}, compute_job_id=job.id)

    # ------------------------------------------------------------------ solver callbacks

    def send_app_message(
        self, job: Job, pending: PendingAppMessage, connection: Socket | None = None
    ) -> None:
        """Send (or re-send, to ``connection``) the job's APP_MESSAGE and keep it pending."""
        resend = connection is not None
        if not resend:
            if job.terminal or pending.answer.done():
                return  # the job ended or the solve stopped waiting before the loop got here
            job.pending_app_message = pending
            self.pending_app_messages[pending.id] = job
            if pending.file is not None:
                job.app_message_files[pending.id] = pending.file
                while len(job.app_message_files) > APP_MESSAGE_FILES_KEPT:
                    del job.app_message_files[next(iter(job.app_message_files))]
        target = connection or self.connection_of(job)
        file_url = job.app_message_file_url(pending.id) if pending.file is not None else None
        message = m.AppMessage(
            job.id, pending.id, pending.app_message_type, file_url, dict(pending.body)
        )
        self.record.add(
            "app_message",
            {
                "appMessageId": pending.id,
                "appMessageType": pending.app_message_type,
                "resend": resend,
                "delivered": target is not None,
                "appMessage": pending.body,
                "appMessageFile": file_url,
            },
            connection_id=None if target is None else target.id,
            compute_job_id=job.id,
        )
        if target is not None:
            written = functools.partial(self._app_message_written, target, job, pending)
            self.send_to(target, job, message, written)

    def _app_message_written(
        self, connection: Socket, job: Job, pending: PendingAppMessage
    ) -> None:
        """The APP_MESSAGE is on the wire: note when, and drop the socket if a fault says so."""
        self.record.add(
            "app_message_written",
            {"appMessageId": pending.id},
            connection_id=connection.id,
            compute_job_id=job.id,
        )

        def after_app_message(fault: f.DropSocket) -> bool:
            return fault.message_type == m.AppMessage.MESSAGE_TYPE

        drop = self.faults.take(f.DropSocket, job.id, after_app_message)
        if drop is not None:
            self._note_fault(job, "drop-socket", afterMessageType=drop.message_type)
            connection.drop(drop.close_code)

    def answer_app_message(
        self, connection: Socket, response: m.AppMessageResponse, controls: dict[str, Any]
    ) -> None:
        """Resume the paused solve with the client's answer, or say the message is unknown."""
        job = self.pending_app_messages.get(response.app_message_id)
        pending = None if job is None else job.pending_app_message
        matched = (
            job is not None
            and pending is not None
            and pending.id == response.app_message_id
            and job.id == response.compute_job_id
        )
        answer = AppAnswer(interrupt=response.interrupt_solve, controls=controls)
        if matched and job is not None and pending is not None:
            self._release(job, pending)
            # False when the solve gave up waiting an instant ago (its limit ran out).
            matched = pending.resolve(answer)
        self.record.add(
            "app_message_response",
            {
                "appMessageId": response.app_message_id,
                "interrupt": response.interrupt_solve,
                "controls": controls,
                "matched": matched,
            },
            connection_id=connection.id,
            compute_job_id=response.compute_job_id,
        )
        if not matched:
            connection.send_error(
                m.APP_MESSAGE_NOT_FOUND,
                f"no APP_MESSAGE {response.app_message_id!r} is waiting for an answer "
                f"for compute job {response.compute_job_id!r}",
                response.compute_job_id,
            )

    def app_message_timed_out(self, job: Job, pending: PendingAppMessage) -> None:
        """No answer came within the limit: the solve stops and the job will fail (§B4.7.3)."""
        self._release(job, pending)
        self.record.add(
            "app_message_timeout",
            {
                "appMessageId": pending.id,
                "appMessageType": pending.app_message_type,
                "limitSeconds": job.app_message_limit(self.config.app_message_timeout_seconds),
            },
            compute_job_id=job.id,
        )

    def release_app_message(self, job: Job) -> None:
        """Forget the job's pending APP_MESSAGE (the job is being cancelled)."""
        if job.pending_app_message is not None:
            self._release(job, job.pending_app_message)

    def _release(self, job: Job, pending: PendingAppMessage) -> None:
        self.pending_app_messages.pop(pending.id, None)
        if job.pending_app_message is pending:
            job.pending_app_message = None
