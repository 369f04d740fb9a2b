"""The timing and size knobs of the core (:class:`FollowerConfig`), checked when made."""

from __future__ import annotations

import dataclasses

from airflow_insight.exceptions import ConfigurationError
from airflow_insight.protocol.runlog import DEFAULT_MAX_BUFFERED_LINES, DEFAULT_TAIL_LINES

__all__ = ["FollowerConfig"]


@dataclasses.dataclass(frozen=True, slots=True)
class FollowerConfig:
    """Timing and size knobs of a :class:`~.follower.Follower`; tests shrink the times to ms."""

    #: Check a job over REST when nothing was heard of it for this long.
    silence_limit_seconds: float = 60.0
    reconnect_initial_delay_seconds: float = 0.5
    reconnect_max_delay_seconds: float = 30.0
    reconnect_multiplier: float = 2.0
    #: Each delay is scaled by a factor in ``[1 - jitter_fraction, 1 + jitter_fraction]``.
    jitter_fraction: float = 0.2
    #: How many forwarded run-log lines the outcome quotes.
    run_log_tail_lines: int = DEFAULT_TAIL_LINES
    max_buffered_lines: int = DEFAULT_MAX_BUFFERED_LINES
    #: Send ``SUBSCRIBE`` for a job as soon as it is followed on an open socket (§B9 #5).
    subscribe_on_follow: bool = True
    #: A socket open this long has proven itself: losing it later starts the backoff over.
    stable_connection_seconds: float = 10.0
    #: Fail a followed job with :class:`~airflow_insight.exceptions.ServerUnreachable` when
    #: neither the socket nor any REST call has answered for this long (None: never).
    unreachable_limit_seconds: float | None = 600.0
    #: While the server does not answer, say so in the task log this often (retries are DEBUG).
    outage_report_interval_seconds: float = 60.0

    def __post_init__(self) -> None:
        positive = {
            "silence_limit_seconds": self.silence_limit_seconds,
            "reconnect_initial_delay_seconds": self.reconnect_initial_delay_seconds,
            "reconnect_max_delay_seconds": self.reconnect_max_delay_seconds,
            "stable_connection_seconds": self.stable_connection_seconds,
            "outage_report_interval_seconds": self.outage_report_interval_seconds,
        }
        if self.unreachable_limit_seconds is not None:
            positive["unreachable_limit_seconds"] = self.unreachable_limit_seconds
        for name, value in positive.items():
            if not value > 0:
                raise ConfigurationError(f"{name} must be positive, not {value!r}")
        if self.reconnect_multiplier < 1:
            raise ConfigurationError("reconnect_multiplier must be at least 1")
        if not 0 <= self.jitter_fraction < 1:
            raise ConfigurationError("jitter_fraction must be in [0, 1)")
