"""The ``ComputeJobRequest`` a task sends, built alike by the operator and the start trigger."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from airflow_insight.exceptions import ConfigurationError


class SolverCallbacks(Protocol):
    """What a task asked for in solver callbacks, already validated (the progress feature's
    ``ProgressOptions``).

    The core defines only this shape: which callbacks to ask for, and the controls that go with
    them, are the feature's decision, so the request is built without importing a feature.
    """

    def job_request(self, job_request: Mapping[str, Any]) -> dict[str, Any]:
        """``job_request`` with the callbacks merged into ``solver.callbacks``."""
        ...


def build_request(
    job_request: Mapping[str, Any] | None,
    job_id: str,
    progress: SolverCallbacks | None = None,
) -> dict[str, Any]:
    """The ``ComputeJobRequest`` to send: the user's fields, our ``id``, run-log messages on,
    and with ``progress`` the progress callbacks merged into ``solver.callbacks``.

    ``solver.callbacks`` in ``job_request`` are kept only with ``progress`` (they are answered
    and recorded then); without it they are refused, pointing at ``solver_progress`` (§A10).
    """
    request = dict(job_request or {})
    solver = request.get("solver")
    if progress is None and isinstance(solver, Mapping) and solver.get("callbacks"):
        raise ConfigurationError(
            "job_request enables solver.callbacks without solver_progress; pass"
            " solver_progress=True (or solver_progress=[callback names]) to have them answered"
            " and recorded, or remove solver.callbacks (protocol §A10)"
        )
    request.pop("runlogMessages", None)  # the legacy spelling must not contradict ours
    request["id"] = job_id
    request["runLogMessages"] = True
    request.setdefault("computeJobType", "SOLVER")
    if progress is not None:
        request = progress.job_request(request)
    return request
