"""Submit one compute job without ever creating it twice (§A8, §B9 #16): the submit decision.

A small flow the REST client steps, as :class:`~.cancel.CancelFlow` is stepped: each answer
returns the next step, a :class:`Send` (the ``POST``, with the request part's type), a
:class:`LookUp` (read the job back), a :class:`Wait`, or an end: :class:`Created` (the answer
holds our job), :class:`Found` (the job exists: our earlier request went through) or
:class:`Fail` (raise its error). The decisions:

* a submission is never resent blindly: after an answer that leaves the outcome open (a timeout,
  a broken connection, a 5xx or 429) the job is read back first and taken when it exists;
* only a job not found is sent again, after the backoff, within the retry bound; a 500 is read
  back but not resent (it is no passing state of the server);
* a 415 to the vendor part type is resent once with the plain JSON type;
* a 409 to a *resend* most likely means our earlier request went through after all (it was still
  on its way when the job was read back): the job is read back once more and taken when there.

The flow does no I/O and reads no clock; the retry bound and backoff are the caller's
(``next_delay``). Why here and not in the REST client: ``docs/design.md#submit-idempotency``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection
from typing import Any

from airflow_insight.exceptions import InsightError, LocalProtocolError, ServerError
from airflow_insight.protocol.wire import V2_JSON

#: Part type used when the server refuses the vendor type for the job request part (§B9 #16).
FALLBACK_PART_TYPE = "application/json"

#: The answers that created the job.
CREATED_STATUSES = frozenset({200, 201})
#: ``next_delay(attempt, retry_after_seconds)``: the wait before the next attempt, None to stop.
NextDelay = Callable[[int, float | None], float | None]


@dataclasses.dataclass(frozen=True, slots=True)
class Send:
    """``POST`` the submission with ``part_type`` for the request part; answer with
    :meth:`SubmitFlow.answered` or :meth:`SubmitFlow.no_answer`. ``note`` (when set) says why
    this is sent again, for a WARNING."""

    part_type: str
    attempt: int
    note: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class LookUp:
    """Read the job back; answer with :meth:`SubmitFlow.found` or :meth:`SubmitFlow.missing`."""


@dataclasses.dataclass(frozen=True, slots=True)
class Wait:
    """Wait ``delay_seconds`` after attempt ``attempt`` failed for ``why``; then
    :meth:`SubmitFlow.waited`."""

    delay_seconds: float
    attempt: int
    why: str


@dataclasses.dataclass(frozen=True, slots=True)
class Created:
    """The last answer created the job: its body is our job document."""


@dataclasses.dataclass(frozen=True, slots=True)
class Found:
    """The job exists: an earlier request of ours went through. ``note`` says how we know."""

    document: dict[str, Any]
    note: str


@dataclasses.dataclass(frozen=True, slots=True)
class Fail:
    """The submission failed: raise ``error``."""

    error: InsightError


Step = Send | LookUp | Wait | Created | Found | Fail


@dataclasses.dataclass(slots=True)
class _Open:
    """An answer that left the outcome open, kept while the job is read back."""

    error: InsightError
    why: str
    retry_after_seconds: float | None = None
    may_resend: bool = True
    #: A 409 to a resend: the job not found means the 409 stands.
    conflict: bool = False


class SubmitFlow:
    """One submission: ``start``, then answer each step until :class:`Created`, :class:`Found`
    or :class:`Fail`.

    ``resend_statuses`` are the error statuses worth sending again (after the job was not found);
    ``next_delay`` is the retry policy.
    """

    def __init__(
        self, job_id: str, *, next_delay: NextDelay, resend_statuses: Collection[int]
    ) -> None:
        self.job_id = job_id
        self._next_delay = next_delay
        self._resend_statuses = resend_statuses
        self._part_type = V2_JSON
        self._attempt = 0
        # True once a request whose outcome was open has been sent again.
        self._resent = False
        self._open: _Open | None = None

    def start(self) -> Step:
        """The first step: send the submission with the vendor part type."""
        return self._send()

    def answered(self, status: int, error: InsightError | None) -> Step:
        """The server answered ``status``; ``error`` is what that answer means (None: 2xx)."""
        if status in CREATED_STATUSES:
            return Created()
        if status == 415 and self._part_type == V2_JSON:
            self._part_type = FALLBACK_PART_TYPE
            note = f"Server refused the part type {V2_JSON} (415); resending as {self._part_type}"
            return self._send(note)
        if error is None:
            raise LocalProtocolError(
                f"HTTP {status} to a submission was answered without its error"
            )
        if isinstance(error, ServerError):
            may_resend = status in self._resend_statuses
            retry_after = error.retry_after_seconds
            self._open = _Open(error, f"HTTP {status}", retry_after, may_resend)
            return LookUp()
        if status == 409 and self._resent:
            self._open = _Open(error, "HTTP 409", may_resend=False, conflict=True)
            return LookUp()
        return Fail(error)

    def no_answer(self, error: InsightError, *, outcome_unknown: bool) -> Step:
        """No answer came (``error``); ``outcome_unknown`` when the server may have acted."""
        if not outcome_unknown:
            return Fail(error)
        self._open = _Open(error, str(error))
        return LookUp()

    def found(self, document: dict[str, Any]) -> Step:
        """The job was read back: it exists, so it is ours."""
        open_ = self._take_open()
        job = f"Compute job {self.job_id!r}"
        if open_.conflict:
            return Found(document, f"{job} exists (409 to a resend): it was ours")
        return Found(document, f"{job} exists after {open_.why}: the submission went through")

    def missing(self) -> Step:
        """The server has no such job: send again after the backoff, or give up."""
        open_ = self._take_open()
        if not open_.may_resend:
            return Fail(open_.error)
        delay = self._next_delay(self._attempt, open_.retry_after_seconds)
        if delay is None:
            return Fail(open_.error)
        self._resent = True
        return Wait(delay, self._attempt, open_.why)

    def waited(self) -> Step:
        """The wait is over: send again."""
        return self._send()

    def _send(self, note: str = "") -> Send:
        self._attempt += 1
        return Send(self._part_type, self._attempt, note)

    def _take_open(self) -> _Open:
        open_, self._open = self._open, None
        if open_ is None:
            raise LocalProtocolError(f"no read-back of compute job {self.job_id!r} was asked for")
        return open_
