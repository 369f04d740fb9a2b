"""Which job a task attempt runs: re-attach to an earlier try's job, reuse its result, or submit.

Pure bookkeeping, no I/O: the adapter reads the stored job id (Airflow's ``task_state_store``), asks
:func:`job_to_look_up` which job to fetch, fetches it (or learns it does not exist) and hands the
answer to :func:`choose_job`, which returns what to do:

* no job to look up, or the job does not exist (404): :class:`Submit` a fresh job;
* the job is not terminal: :class:`Reattach` to it (``SUBSCRIBE`` and follow it);
* the stored job ``COMPLETED`` with an accepted model status: :class:`Reuse` its result, nothing
  runs again;
* any other terminal job: :class:`Submit` a fresh job. When the fresh id is the finished job's own
  (a fixed ``job_id`` given by the user) that job is deleted first (``delete_first``), because the
  server answers 409 to a second job of the same id.

A fixed id is looked up even without a stored id: its job may be an earlier try's although no
store remembered it.

Without a task state store (an Airflow without ``task_state_store``) the adapter looks up the ids
the earlier tries derived (:func:`earlier_try_numbers`, newest first) and passes the first job that
exists as the stored one with ``reuse=False``: a job still running is re-attached to, a finished
one is never reused, since a look-up by id cannot tell a retry from a user's clear (which asks for
a new run).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Collection, Mapping
from typing import Any

from airflow_insight.protocol.outcome import JobOutcome
from airflow_insight.protocol.statuses import JobStatus, is_terminal
from airflow_insight.protocol.wire import JOB_ID_ALPHABET, JOB_ID_MAX_LENGTH

#: Length of the hash that makes derived job ids unique per attempt.
JOB_ID_HASH_CHARS = 12


def derive_job_id(dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> str:
    """A job id unique per task attempt: a readable prefix plus a short hash of the identity.

    The result follows §A8 (1-60 characters of ``[A-Za-z0-9_.-]``): other characters in the
    prefix become ``-`` and the prefix is cut to fit; the hash covers the full identity.
    """
    identity = "\x1f".join([dag_id, run_id, task_id, str(map_index), str(try_number)])
    digest = hashlib.sha256(identity.encode()).hexdigest()[:JOB_ID_HASH_CHARS]
    prefix = "".join(ch if ch in JOB_ID_ALPHABET else "-" for ch in f"{dag_id}.{task_id}")
    room = JOB_ID_MAX_LENGTH - JOB_ID_HASH_CHARS - 1
    return f"{prefix[:room]}-{digest}"


@dataclasses.dataclass(frozen=True, slots=True)
class TaskIdentity:
    """The task instance a derived job id belongs to (all but the try number).

    The operator on a worker and the trigger that starts a task in the triggerer derive the
    same ids from it, so either finds the jobs of the other's tries.
    """

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1

    @classmethod
    def of(cls, ti: Any) -> TaskIdentity:
        """Read it from any task-instance-like object (``dag_id``, ``run_id``, ...)."""
        map_index = getattr(ti, "map_index", -1)
        return cls(
            str(ti.dag_id),
            str(ti.run_id),
            str(ti.task_id),
            -1 if map_index is None else int(map_index),
        )

    def job_id(self, try_number: int) -> str:
        """The job id try ``try_number`` of this task instance derives."""
        return derive_job_id(self.dag_id, self.run_id, self.task_id, self.map_index, try_number)

    def earlier_job_ids(self, try_number: int) -> list[str]:
        """The ids the earlier tries derived, newest first (:func:`earlier_try_numbers`)."""
        return [self.job_id(earlier) for earlier in earlier_try_numbers(try_number)]


def is_terminal_document(document: Mapping[str, Any]) -> bool:
    """True when a job document's ``status`` ends the job (an unknown or missing one does not)."""
    status = document.get("status")
    return isinstance(status, str) and is_terminal(status)


def succeeded_document(document: Mapping[str, Any], accepted: Collection[str]) -> bool:
    """True when the job document is ``COMPLETED`` with a model status in ``accepted``."""
    outcome = JobOutcome.from_job_document(str(document.get("id", "")), document)
    return outcome.status == JobStatus.COMPLETED and outcome.succeeded(frozenset(accepted))


@dataclasses.dataclass(frozen=True)
class Submit:
    """Submit a fresh job with ``job_id``; delete ``delete_first`` (a finished job) before."""

    job_id: str
    delete_first: str | None = None


@dataclasses.dataclass(frozen=True)
class Reattach:
    """Follow the still-running job ``job_id`` (its current ``document``)."""

    job_id: str
    document: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Reuse:
    """An earlier try's job ``job_id`` already succeeded: return its result, run nothing."""

    job_id: str
    document: Mapping[str, Any]


Decision = Submit | Reattach | Reuse


def earlier_try_numbers(try_number: int) -> range:
    """The earlier tries of try ``try_number``, newest first (whose derived job ids to look up)."""
    return range(try_number - 1, 0, -1)


def job_to_look_up(stored_id: str | None, fixed_id: str | None) -> str | None:
    """The job whose document decides: the stored id, else the user's fixed id, else none."""
    return stored_id or fixed_id or None


def choose_job(
    *,
    stored_id: str | None,
    fixed_id: str | None,
    fresh_id: str,
    document: Mapping[str, Any] | None,
    accepted: Collection[str],
    reuse: bool = True,
) -> Decision:
    """What this attempt does (see the module docstring).

    :param stored_id: the job id an earlier try stored (None: none stored, or no store).
    :param fixed_id: the user's fixed ``job_id`` (None: ids are derived per try).
    :param fresh_id: the id a fresh job of this try gets (the fixed id, or a derived one).
    :param document: the looked-up job's document; None when nothing was looked up or the server
        answered 404.
    :param accepted: the model statuses counted as success.
    :param reuse: False: a stored job that succeeded is not reused but submitted afresh (its id
        was found by looking up earlier tries, which cannot tell a retry from a user's clear).
    """
    candidate = job_to_look_up(stored_id, fixed_id)
    if candidate is None or document is None:
        return Submit(fresh_id)
    if not is_terminal_document(document):
        return Reattach(candidate, document)
    if reuse and candidate == stored_id and succeeded_document(document, accepted):
        return Reuse(candidate, document)
    return Submit(fresh_id, delete_first=fresh_id if candidate == fresh_id else None)


def choose_started_job(
    *,
    own_id: str,
    found_id: str | None,
    document: Mapping[str, Any] | None,
    accepted: Collection[str],
) -> Decision:
    """What a trigger that starts its task's job decides (no task state store there).

    ``own_id`` is this try's derived id, ``found_id`` the first of this try's and the earlier
    tries' ids (newest first) whose job exists, ``document`` that job's. This try's own job is
    followed whatever its status: the trigger was rebuilt (another triggerer, a restart) after it
    had submitted, and submitting again would be answered 409. An earlier try's job is decided as
    without a store: re-attached to while it runs, never reused once finished.
    """
    if found_id == own_id and document is not None:
        return Reattach(own_id, document)
    return choose_job(
        stored_id=found_id,
        fixed_id=None,
        fresh_id=own_id,
        document=document,
        accepted=accepted,
        reuse=False,
    )
