"""What the installed Airflow offers beyond the authoring names, each checked on the feature itself.

Every check looks for the thing this provider uses (a class, a method, a context key, a schema
entry), never at the version number, so a backport turns a feature on and a removal turns it off
(and fails the per-line test in ``tests/compat``, which asserts the exact set that is on). Each
:class:`Feature` says why it is off and what the provider does instead; ``docs/airflow-versions.md``
has the table by Airflow line. A worker task and a triggerer log the whole set once per process
(:func:`log_once`).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import logging
import sys
from collections.abc import Callable

#: The log line's logger (and the name a reader searches the task log for).
LOGGER_NAME = "airflow_insight.compat"


@dataclasses.dataclass(frozen=True, slots=True)
class Feature:
    """One Airflow feature the provider uses: whether it is on, and what happens when it is off."""

    name: str
    on: bool
    #: What is missing, when off ("Airflow 3.2.2 has no GetVariableKeys").
    why_off: str
    #: What the provider does without it.
    fallback: str

    def describe(self) -> str:
        """``name: on`` or ``name: off (why; fallback)``."""
        if self.on:
            return f"{self.name}: on"
        return f"{self.name}: off ({self.why_off}; {self.fallback})"


def _version() -> str:
    from airflow_insight.compat.sdk import airflow_version

    return airflow_version()


def _feature(
    name: str, fallback: str
) -> Callable[[Callable[[], str | None]], Callable[[], Feature]]:
    """Make a cached feature from a check that returns None when on, else what is missing."""

    def wrap(check: Callable[[], str | None]) -> Callable[[], Feature]:
        @functools.cache
        def feature() -> Feature:
            missing = check()
            why = "" if missing is None else f"Airflow {_version()} has no {missing}"
            return Feature(name, missing is None, why, fallback)

        feature.__doc__ = check.__doc__
        _ALL.append(feature)
        return feature

    return wrap


_ALL: list[Callable[[], Feature]] = []


@_feature(
    "re-attach through task_state_store",
    "a retry looks up the job ids of the earlier tries (derived per try) and re-attaches to one"
    " still running; a finished one is not reused",
)
def task_state_store() -> str | None:
    """The durable per-task store that survives retries (``context["task_state_store"]``)."""
    from airflow.sdk.definitions.context import Context

    return None if "task_state_store" in Context.__annotations__ else "task_state_store"


@_feature(
    "trigger on_kill",
    "the trigger makes the same kill decision in its cleanup when it was cancelled before its end",
)
def trigger_on_kill() -> str | None:
    """Airflow calls ``BaseTrigger.on_kill`` when a user ends a deferred task."""
    from airflow.triggers.base import BaseTrigger

    return None if "on_kill" in vars(BaseTrigger) else "BaseTrigger.on_kill"


@_feature(
    "watermark resume",
    "a trigger moved to another triggerer forwards the run log again from where the task"
    " deferred (lines repeat in the task log; none is lost)",
)
def watermark_resume() -> str | None:
    """A trigger can list Variables by prefix (``GetVariableKeys``) to find stored watermarks."""
    from airflow.sdk.execution_time import comms

    return None if hasattr(comms, "GetVariableKeys") else "GetVariableKeys"


@_feature(
    "clean-stop guard",
    "on a triggerer's stop the triggers stop as Airflow stops them, without a final watermark",
)
def clean_stop_guard() -> str | None:
    """The trigger runner stops through ``TriggerRunner._handle_signal``, which we chain."""
    from airflow.jobs.triggerer_job_runner import TriggerRunner

    return None if hasattr(TriggerRunner, "_handle_signal") else "TriggerRunner._handle_signal"


@_feature(
    "log-delivery wait",
    "the trigger fires at once; under load its last run-log lines may land in the triggerer's log",
)
def log_delivery_wait() -> str | None:
    """Trigger log records travel over a local socket whose unread bytes Linux can count."""
    from airflow.sdk.execution_time import supervisor

    if not sys.platform.startswith("linux"):
        return "way to count unread log bytes on this platform"
    found = hasattr(supervisor, "_configure_logs_over_json_channel")
    return None if found else "_configure_logs_over_json_channel"


@_feature(
    "concurrent supervisor requests",
    "a request to the triggerer's supervisor is never cut off: a caller that stops waiting"
    " leaves it to finish",
)
def concurrent_supervisor_requests() -> str | None:
    """The trigger runner answers several supervisor requests at once (a reader task)."""
    from airflow.jobs.triggerer_job_runner import TriggerCommsDecoder

    return None if hasattr(TriggerCommsDecoder, "start_reader") else "concurrent comms reader"


@_feature(
    "declarative connection form",
    "the form comes from the hook's get_connection_form_widgets (needs wtforms, which the FAB"
    " provider brings)",
)
def declarative_connection_form() -> str | None:
    """Airflow builds connection forms from the provider info's ``conn-fields``."""
    schema = importlib.resources.files("airflow").joinpath("provider.yaml.schema.json")
    try:
        text = schema.read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        text = ""
    return None if '"conn-fields"' in text else "conn-fields in its provider schema"


@_feature(
    "start in triggerer",
    "a deferrable task starts on a worker, submits its job there and defers",
)
def start_in_triggerer() -> str | None:
    """The scheduler defers a ``start_from_trigger`` task at once (``DagRun.schedule_tis`` calls
    ``defer_task``; 3.1 and 3.2 have that call commented out) and the triggerer renders such a
    task's templated fields (``BaseTrigger.render_template_fields``), so a templated
    ``job_request`` reaches the trigger rendered."""
    import inspect

    try:
        from airflow.models.dagrun import DagRun
        from airflow.triggers.base import BaseTrigger
    except ImportError:  # a worker with the task SDK alone: the DAG processor decides
        return "scheduler here"
    code = inspect.unwrap(DagRun.schedule_tis).__code__
    if "defer_task" not in code.co_names:
        return "start_from_trigger in its scheduler (DagRun.schedule_tis)"
    if not hasattr(BaseTrigger, "render_template_fields"):
        return "template rendering for start_from_trigger tasks in its triggerer"
    return None


@_feature(
    "end in triggerer",
    "every deferred task resumes on a worker to end (execute_complete), as with"
    " resume_on_worker=True",
)
def end_in_triggerer() -> str | None:
    """A trigger ends its task itself (``TaskSuccessEvent``), having pushed the task's XComs
    through its supervisor (``SetXCom``)."""
    from airflow.sdk.execution_time import comms
    from airflow.triggers import base

    if not hasattr(base, "TaskSuccessEvent"):
        return "TaskSuccessEvent"
    return None if hasattr(comms, "SetXCom") else "SetXCom"


def all_features() -> list[Feature]:
    """Every feature, in a fixed order."""
    return [feature() for feature in _ALL]


def enabled() -> frozenset[str]:
    """The names of the features that are on."""
    return frozenset(feature.name for feature in all_features() if feature.on)


def summary() -> str:
    """One line: the Airflow version and every feature, on or off and why."""
    parts = "; ".join(feature.describe() for feature in all_features())
    return f"airflow-insight on Airflow {_version()}: {parts}"


_LOGGED: set[str] = set()


def log_once(process: str) -> None:
    """Log :func:`summary` once per process and kind (``worker task``, ``triggerer``)."""
    if process in _LOGGED:
        return
    _LOGGED.add(process)
    logging.getLogger(LOGGER_NAME).info("%s: %s", process, summary())
