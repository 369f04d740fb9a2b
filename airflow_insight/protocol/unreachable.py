"""How long the Insight server may stay unreachable before the try fails: the one rule.

:class:`UnreachableTimer` is told when the server answered and when a call got no answer; it
says the outage (once at its start, then each time the adapter asks), says its end, says when
the limit passes, and gives the retryable :class:`~airflow_insight.exceptions.ServerUnreachable`.
The silence counts from the last answer the adapter was waiting past: a listener (the follower,
whose socket is a standing question) from the last answer itself, a poker (the sensor, which asks
nothing between pokes) from the first call that got no answer. The timer reads no clock: the
adapter passes ``now`` (monotonic seconds) and logs what it returns
(``docs/design.md#the-unreachable-timer``).
"""

from __future__ import annotations

from airflow_insight.exceptions import ServerUnreachable
from airflow_insight.protocol.events import ServerAnswersAgain, ServerUnanswered


class UnreachableTimer:
    """The outage bookkeeping of one adapter waiting for one server.

    ``server`` is the server as the log names it; ``limit_seconds`` None never gives up.
    ``listening`` True: the adapter waits for the server all along (see :meth:`listen`).
    """

    def __init__(
        self, server: str, limit_seconds: float | None, *, listening: bool = False
    ) -> None:
        self.server = server
        self.limit_seconds = limit_seconds
        self.listening = listening
        # Where the silence counts from (None: nothing counts, the server answers).
        self._silent_since: float | None = None
        # Whether a call got no answer since the last answer: an outage is under way.
        self._unanswered = False

    @property
    def in_outage(self) -> bool:
        """True while calls get no answer."""
        return self._unanswered

    def listen(self, now: float) -> None:
        """A listener starts waiting at ``now``: the silence counts from here, an outage nobody
        waited through is forgotten (unsaid)."""
        self._silent_since = now if self.listening else None
        self._unanswered = False

    def stop(self) -> None:
        """Nothing waits for the server any more: nothing counts until :meth:`listen`."""
        self._silent_since = None
        self._unanswered = False

    def answered(self, now: float) -> ServerAnswersAgain | None:
        """The server answered: an outage under way ends (its event, said once), else None."""
        since, unanswered = self._silent_since, self._unanswered
        self._silent_since = now if self.listening else None
        self._unanswered = False
        if not unanswered:
            return None
        return ServerAnswersAgain(self.server, now - (now if since is None else since))

    def unanswered(self, now: float, error: str = "") -> ServerUnanswered:
        """A call got no answer (or a report is due): the outage as it stands, to log."""
        first = not self._unanswered
        self._unanswered = True
        if self._silent_since is None:
            self._silent_since = now
        waited = now - self._silent_since
        limit = self.limit_seconds
        return ServerUnanswered(
            self.server,
            silent_seconds=waited,
            gives_up_in_seconds=None if limit is None else limit - waited,
            limit_seconds=limit,
            first=first,
            error=error,
        )

    def deadline(self) -> float | None:
        """When the try gives up unless the server answers first; None: not counting."""
        if self.limit_seconds is None or self._silent_since is None:
            return None
        return self._silent_since + self.limit_seconds

    def expired(self, now: float) -> bool:
        """True once the silence lasted the limit: the try gives up."""
        deadline = self.deadline()
        return deadline is not None and now >= deadline

    def give_up(self, now: float, job_id: str, error: str | None = None) -> ServerUnreachable:
        """The retryable error that ends the wait for ``job_id`` after the limit."""
        waited = 0.0 if self._silent_since is None else now - self._silent_since
        if self.listening:
            return ServerUnreachable(
                f"no answer from {self.server} for {waited:.0f} s (neither the progress socket"
                f" nor REST) while following Insight compute job {job_id}; the job may still be"
                " running there: a retry of the task re-attaches to it once the server is back"
                " (limit: unreachable_limit_seconds)"
            )
        return ServerUnreachable(
            f"no answer from {self.server} for {waited:.0f} s while waiting for Insight compute"
            f" job {job_id} (last error: {error}); the job may still be running there: a retry"
            " of the task waits for it again (limit: unreachable_limit_seconds)"
        )
