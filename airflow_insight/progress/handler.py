"""The ``APP_MESSAGE`` handler of one followed job: :class:`SolverProgress`, sans I/O.

The core calls :meth:`SolverProgress.answer` the moment a message is decoded; it answers at once,
records the progress (last record, series, latest solution file), tries the stop rules and
returns the events to log. No I/O, no clock of its own: ``now`` is the driver's clock reading.

* **Bad input is survived.** A message without usable attributes or with an unknown
  ``appMessageType`` still gets its answer; it yields a partial record or none, and an event
  saying why. Nothing here raises on server input.
* **One line per change worth seeing.** A record whose best solution and gap read as on the last
  line shown (an INTSOL is followed at once by a GLOBALLOG with the same figures; a bound that
  creeps by less than the printed gap) is logged at DEBUG unless ``heartbeat_seconds`` passed
  since that line. Before the first incumbent the bound stands in for the gap.
* **Re-sent messages** (the server re-sends unanswered ones after a reconnect, §B4.6) get the same
  kind of answer and are recorded once (by ``appMessageId``).
* **A stop is final.** Once a rule fired, every later message of the job is answered
  ``interruptSolve: true`` as well: callbacks that were already on their way must not resume a
  solve the user asked to stop, and an interrupted remote solve cannot be continued anyway.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_insight.exceptions import ConfigurationError
from airflow_insight.progress.events import (
    ProgressEvent,
    ProgressRecorded,
    ProgressStarted,
    ProgressUnreadable,
    SolveStopRequested,
)
from airflow_insight.progress.records import ProgressRecord, Sense, read_progress
from airflow_insight.progress.rules import (
    ProgressState,
    StopDecision,
    StopRule,
    stop_rules_from_json,
    stop_rules_to_json,
)
from airflow_insight.progress.series import ProgressSeries
from airflow_insight.protocol import messages as m

if TYPE_CHECKING:
    from airflow_insight.protocol.appmessages import AppMessageHandler

#: A record that changes nothing still gets a log line this long after the last one shown.
HEARTBEAT_SECONDS = 30.0

# How many appMessageIds are remembered to spot re-sent messages: the server re-sends only the
# ones still unanswered, which is one per paused solve.
_SEEN_IDS = 64


def _better(new: float, old: float, sense: Sense | None) -> bool:
    # Without a known sense any change counts: Xpress only ever reports a better incumbent.
    tolerance = 1e-9 * max(1.0, abs(old))
    if sense == "minimize":
        return new < old - tolerance
    if sense == "maximize":
        return new > old + tolerance
    return abs(new - old) > tolerance


def _inferred_sense(record: ProgressRecord) -> Sense | None:
    best, bound = record.best_solution, record.best_bound
    if best is None or bound is None or best == bound:
        return None
    return "minimize" if bound < best else "maximize"


class SolverProgress:
    """The ``APP_MESSAGE`` handler for one followed job (``AppMessageHandler``).

    Answers every message at once, records its progress, and interrupts the solve when one of
    ``stop_rules`` fires (rules are tried in order; the first that fires is reported). Records
    are shown (logged at INFO) when their best solution or gap (the bound before there is a gap)
    reads differently from the last shown one, or ``heartbeat_seconds`` (driver's clock) after
    it; the rest at DEBUG.
    """

    def __init__(
        self,
        stop_rules: Iterable[StopRule | Mapping[str, Any]] | None = (),
        *,
        series_limit: int = 200,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
    ) -> None:
        self.stop_rules = stop_rules_from_json(stop_rules)
        self.series = ProgressSeries(series_limit)
        if not (isinstance(heartbeat_seconds, int | float) and heartbeat_seconds >= 0):
            raise ConfigurationError(
                f"heartbeat_seconds must be a number of at least 0, not {heartbeat_seconds!r}"
            )
        self.heartbeat_seconds = float(heartbeat_seconds)
        self._shown: tuple[float, tuple[str, str]] | None = None
        self.last_record: ProgressRecord | None = None
        self.stopped_by: StopDecision | None = None
        self.messages_answered = 0
        #: ``appMessageFile`` of the latest incumbent (INTSOL), to download after the job.
        self.latest_solution_file: str | None = None
        self._sense: Sense | None = None
        self._best: float | None = None
        self._improved_at: float | None = None
        self._seen: OrderedDict[str, None] = OrderedDict()

    def answer(
        self, message: m.AppMessage, now: float
    ) -> tuple[m.AppMessageResponse, Sequence[ProgressEvent]]:
        """The response to send at once, and the events to log."""
        self.messages_answered += 1
        events: list[ProgressEvent] = []
        if not self._is_resent(message.app_message_id):
            events.extend(self._read(message, now))
        response = m.AppMessageResponse(
            message.compute_job_id,
            message.app_message_id,
            interrupt_solve=self.stopped_by is not None,
        )
        return response, events

    def _is_resent(self, app_message_id: str) -> bool:
        if app_message_id in self._seen:
            return True
        self._seen[app_message_id] = None
        if len(self._seen) > _SEEN_IDS:
            self._seen.popitem(last=False)
        return False

    def _read(self, message: m.AppMessage, now: float) -> list[ProgressEvent]:
        record = read_progress(message, now)
        if record is None:
            reason = "no solver attributes" if message.app_message else "no appMessage body"
            return [
                ProgressUnreadable(
                    message.compute_job_id, message.app_message_id, message.app_message_type, reason
                )
            ]
        self._remember(record, now)
        decision = self._decide(record, now) if self.stopped_by is None else None
        events: list[ProgressEvent] = []
        if self._shown is None:
            started = ProgressStarted(record.job_id, record.problem_name, self.heartbeat_seconds)
            events.append(started)
        # The record a rule fired on is always shown: the stop warning that follows refers to it.
        shown = self._worth_a_line(record, now, stopping=decision is not None)
        events.append(ProgressRecorded(record, shown=shown))
        if decision is not None:
            self.stopped_by = decision
            events.append(SolveStopRequested(record.job_id, decision))
        return events

    def _worth_a_line(self, record: ProgressRecord, now: float, *, stopping: bool) -> bool:
        figures = record.shown_figures()
        if self._shown is not None and not stopping:
            shown_at, shown = self._shown
            if figures == shown and now - shown_at < self.heartbeat_seconds:
                return False
        self._shown = (now, figures)
        return True

    def _remember(self, record: ProgressRecord, now: float) -> None:
        self.last_record = record
        self.series.add(record)
        if record.solution_file is not None:
            self.latest_solution_file = record.solution_file
        self._sense = record.sense or self._sense or _inferred_sense(record)
        best = record.best_solution
        if best is not None and (self._best is None or _better(best, self._best, self._sense)):
            self._best = best
            self._improved_at = now

    def _decide(self, record: ProgressRecord, now: float) -> StopDecision | None:
        state = ProgressState(record, now, self._sense, self._improved_at)
        for rule in self.stop_rules:
            reason = rule.check(state)
            if reason is not None:
                return StopDecision(
                    rule.to_dict(), reason, record.app_message_id, now, record.elapsed_seconds
                )
        return None

    def summary(self) -> dict[str, Any]:
        """The JSON-safe progress part of the task's result (XCom)."""
        last = self.last_record
        return {
            "stopped_early": self.stopped_by is not None,
            "stopped_by": None if self.stopped_by is None else self.stopped_by.to_dict(),
            "stop_rules": stop_rules_to_json(self.stop_rules),
            "messages_answered": self.messages_answered,
            "latest_solution_file": self.latest_solution_file,
            # Without "time": a reading of the driver's clock means nothing in XCom.
            "last": None if last is None else _without_time(last.to_dict()),
            "series": self.series.to_json(),
        }


if TYPE_CHECKING:
    # mypy proves here that the handler fits the core's interface.
    _conforms: AppMessageHandler = SolverProgress()


def _without_time(record: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in record.items() if name != "time"}
