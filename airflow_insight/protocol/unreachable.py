"""How long the Insight server may stay unreachable before the try fails: the one rule.

:class:`UnreachableTimer` is told when a call was answered and when one got no answer; it says
the outage (once at its start, then each time the adapter asks), says its end, and gives the
retryable :class:`~airflow_insight.exceptions.ServerUnreachable` once the limit passed. The
outage counts from the first call that got no answer after the last answer. The timer reads no
clock: the adapter passes ``now`` (monotonic seconds) and logs what it returns
(``docs/design.md#the-unreachable-timer``).
"""

from __future__ import annotations

from airflow_insight.exceptions import ServerUnreachable
from airflow_insight.protocol.events import ServerAnswersAgain, ServerUnanswered


class UnreachableTimer:
    """The outage bookkeeping of one adapter waiting for one server.

    ``server`` is the server as the log names it; ``limit_seconds`` None never gives up.
    """

    def __init__(self, server: str, limit_seconds: float | None) -> None:
        self.server = server
        self.limit_seconds = limit_seconds
        self._since: float | None = None

    @property
    def in_outage(self) -> bool:
        """True while calls get no answer."""
        return self._since is not None

    def answered(self, now: float) -> ServerAnswersAgain | None:
        """A call was answered: an outage under way ends (its event, said once), else None."""
        since, self._since = self._since, None
        if since is None:
            return None
        return ServerAnswersAgain(self.server, now - since)

    def unanswered(self, now: float, error: str) -> ServerUnanswered:
        """A call got no answer: the outage as it stands (to log), counted from its start."""
        first = self._since is None
        if self._since is None:
            self._since = now
        waited = now - self._since
        limit = self.limit_seconds
        return ServerUnanswered(
            self.server,
            silent_seconds=waited,
            gives_up_in_seconds=None if limit is None else limit - waited,
            limit_seconds=limit,
            first=first,
            error=error,
        )

    def expired(self, now: float) -> bool:
        """True once the outage lasted the limit: the try gives up."""
        limit = self.limit_seconds
        return limit is not None and self._since is not None and now - self._since >= limit

    def give_up(self, now: float, job_id: str, error: str) -> ServerUnreachable:
        """The retryable error that ends the wait for ``job_id`` after the limit."""
        waited = 0.0 if self._since is None else now - self._since
        return ServerUnreachable(
            f"no answer from {self.server} for {waited:.0f} s while waiting for Insight compute"
            f" job {job_id} (last error: {error}); the job may still be running there: a retry"
            " of the task waits for it again (limit: unreachable_limit_seconds)"
        )
