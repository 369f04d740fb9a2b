"""The retry policy for REST calls: which answers to retry, and how long to wait in between.

Pure functions of their arguments (the time and the random source are passed in), so the schedule
can be tested without sleeping.
"""

from __future__ import annotations

import dataclasses
import email.utils
import random

#: Statuses that mean "try again later" and are safe to retry for idempotent calls. 500 is not in
#: the list: it usually means a bug on the server that a retry within seconds does not fix.
RETRYABLE_STATUSES: frozenset[int] = frozenset({429, 502, 503, 504})


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter.

    ``max_attempts`` counts every try, the first one included. A ``Retry-After`` longer than
    ``max_retry_after_seconds`` is not slept through: the error is raised instead (carrying the
    server's delay) so that a worker slot is not held for minutes; Airflow's own retries take over.
    """

    max_attempts: int = 5
    base_delay_seconds: float = 0.5
    max_delay_seconds: float = 30.0
    max_retry_after_seconds: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay_seconds < 0 or self.max_delay_seconds < 0:
            raise ValueError("retry delays must not be negative")


def backoff_delay_seconds(policy: RetryPolicy, attempt: int, rng: random.Random) -> float:
    """Return the wait after failed attempt number ``attempt`` (1-based).

    "Equal jitter": half of the exponential step is fixed, half random, so retries from many
    workers spread out while every wait still grows with the attempt number.
    """
    step = min(policy.max_delay_seconds, policy.base_delay_seconds * 2.0 ** (attempt - 1))
    return step / 2 + rng.uniform(0, step / 2)


def parse_retry_after(value: str | None, now_epoch_seconds: float) -> float | None:
    """Parse a ``Retry-After`` header: delta seconds or an HTTP date; ``None`` when unusable.

    A date in the past gives 0. Negative or non-numeric seconds are ignored (``None``).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 and seconds == seconds else None  # rejects NaN
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # "-0000" dates come back naive; HTTP dates are always GMT
        return None
    return max(0.0, moment.timestamp() - now_epoch_seconds)


def wait_before_retry(
    policy: RetryPolicy, attempt: int, retry_after_seconds: float | None, rng: random.Random
) -> float | None:
    """Return how long to wait before attempt ``attempt + 1``, or ``None`` to give up now.

    The server's ``Retry-After`` wins over the backoff schedule when it is given; one above the
    policy's cap gives up (see :class:`RetryPolicy`).
    """
    if attempt >= policy.max_attempts:
        return None
    if retry_after_seconds is not None:
        if retry_after_seconds > policy.max_retry_after_seconds:
            return None
        return retry_after_seconds
    return backoff_delay_seconds(policy, attempt, rng)
