"""Checks a ComputeJobRequest against the rules of §B3.3.1 and normalises it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_insight.emulator.error_bodies import detail
from airflow_insight.protocol.wire import JOB_ID_MAX_LENGTH, is_valid_job_id

JOB_TYPES = ("SOLVER", "MOSEL")
ACTIONS = ("OPTIMIZE", "IIS")
PROBLEM_TYPES = ("LP", "MIP")
FLAGS = ("DUAL", "PRIMAL", "BARRIER", "NETWORK")
RESULTS = ("SOLUTION", "ATTRIBUTES", "BASIS", "SAVE", "IIS")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _string_list(value: Any, allowed: Sequence[str], target: str, problems: list[Any]) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        problems.append(detail(target, f"{target} must be an array of strings"))
        return []
    unknown = [item for item in value if item not in allowed]
    if unknown:
        problems.append(detail(target, f"{target}: unknown value(s) {unknown}; use {allowed}"))
    return list(value)


def _check_id(document: Mapping[str, Any], problems: list[Any]) -> None:
    job_id = document.get("id")
    if not isinstance(job_id, str) or not is_valid_job_id(job_id):
        problems.append(
            detail(
                "id",
                f"id must be 1 to {JOB_ID_MAX_LENGTH} characters of A-Z, a-z, 0-9, '_', '.', '-'",
            )
        )


def _execution(value: Any, services: Sequence[str], problems: list[Any]) -> dict[str, Any]:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        problems.append(detail("execution", "execution must be an object"))
        return {"executionService": services[0], "threads": None, "priority": 0}
    service = value.get("executionService", services[0])
    if service is None:
        service = services[0]
    if service not in services:
        problems.append(
            detail("execution.executionService", f"unknown execution service {service!r}")
        )
    threads = value.get("threads")
    if threads is not None and not (_is_int(threads) and 1 <= threads <= 256):
        problems.append(detail("execution.threads", "threads must be null or 1..256"))
    priority = value.get("priority", 0)
    if priority is None:
        priority = 0
    if not (_is_int(priority) and -100 <= priority <= 100):
        problems.append(detail("execution.priority", "priority must be an integer -100..100"))
    return {"executionService": service, "threads": threads, "priority": priority}


def _solver(value: Any, problems: list[Any]) -> dict[str, Any]:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        problems.append(detail("solver", "solver must be an object"))
        value = {}
    action = value.get("action") or "OPTIMIZE"
    if action not in ACTIONS:
        problems.append(detail("solver.action", f"action must be one of {ACTIONS}"))
    problem_type = value.get("problemType")
    if problem_type is not None and problem_type not in PROBLEM_TYPES:
        problems.append(
            detail("solver.problemType", f"problemType must be null or {PROBLEM_TYPES}")
        )
    controls = value.get("controls")
    if controls is not None and not isinstance(controls, Mapping):
        problems.append(detail("solver.controls", "controls must be an object"))
    results = _string_list(
        value.get("resultsToInclude"), RESULTS, "solver.resultsToInclude", problems
    )
    if "SOLUTION" in results and action != "OPTIMIZE":
        problems.append(detail("solver.resultsToInclude", "SOLUTION needs action OPTIMIZE"))
    if "IIS" in results and action != "IIS":
        problems.append(detail("solver.resultsToInclude", "IIS needs action IIS"))
    callbacks = value.get("callbacks")
    if callbacks is not None and (
        not isinstance(callbacks, list) or not all(isinstance(c, str) for c in callbacks)
    ):
        problems.append(detail("solver.callbacks", "callbacks must be an array of strings"))
    return {
        "action": action,
        "problemType": problem_type,
        "flags": _string_list(value.get("flags"), FLAGS, "solver.flags", problems),
        "controls": dict(controls) if isinstance(controls, Mapping) else None,
        "resultsToInclude": results,
        "callbacks": list(callbacks) if isinstance(callbacks, list) else [],
    }


def _run_log_messages(document: Mapping[str, Any], problems: list[Any]) -> bool:
    # The tables spell it runlogMessages, the JSON examples runLogMessages (§B8): take both.
    for name in ("runLogMessages", "runlogMessages"):
        value = document.get(name)
        if value is None:
            continue
        if not isinstance(value, bool):
            problems.append(detail(name, f"{name} must be true or false"))
            return False
        return value
    return False


def validate_request(
    document: Any, services: Sequence[str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The normalised request and the list of ErrorDetails (empty when valid)."""
    problems: list[dict[str, Any]] = []
    if not isinstance(document, Mapping):
        return {}, [detail("computeJobRequest", "computeJobRequest must be a JSON object")]
    _check_id(document, problems)
    job_type = document.get("computeJobType")
    if job_type not in JOB_TYPES:
        problems.append(detail("computeJobType", f"computeJobType must be one of {JOB_TYPES}"))
    dependency = document.get("dependency")
    if dependency is not None and not isinstance(dependency, str):
        problems.append(detail("dependency", "dependency must be null or a string"))
    normalised = {
        "id": document.get("id"),
        "computeJobType": job_type,
        "dependency": dependency,
        "runLogMessages": _run_log_messages(document, problems),
        "execution": _execution(document.get("execution"), services, problems),
        "solver": _solver(document.get("solver"), problems),
    }
    return normalised, problems
