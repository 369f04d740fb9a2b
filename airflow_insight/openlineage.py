"""Optional OpenLineage facets for Insight compute jobs (used only when OpenLineage is installed).

``apache-airflow-providers-openlineage`` is not a dependency of this provider. When it (and so the
``openlineage-python`` client) is installed, :class:`~airflow_insight.operators.insight.
InsightJobOperator` reports one custom run facet, ``insight_compute_job``, describing the job it
ran: :func:`compute_job_facet_fields` builds its content (a pure function, tested without
OpenLineage) and :func:`operator_lineage` wraps it in the provider's ``OperatorLineage``, importing
the OpenLineage pieces lazily and answering None when they are missing.

Decisions: the facet carries the server URL with any user info, query and fragment removed (a
URL is the one field that could hold a credential); custom facets carry a ``_schemaURL`` of their
own per the OpenLineage spec (see :data:`FACET_SCHEMA_URL`). Nothing here may
fail a task: the provider's extractor already catches exceptions, and this module returns None
rather than raise when OpenLineage is absent.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from airflow_insight.compat.sdk import openlineage_operator_lineage

#: The run-facet key (custom facets are named after the project that defines them).
FACET_NAME = "insight_compute_job"
#: The facet's ``_schemaURL``. The project publishes no schema at a web address yet, so this is a
#: URN (a valid URI, as the spec asks) naming the facet and its version rather than a made-up URL.
FACET_SCHEMA_URL = "urn:airflow-insight:openlineage:InsightComputeJobRunFacet:1-0-0"


def public_url(url: str | None) -> str | None:
    """``url`` without user info, query or fragment (None for None or an empty string)."""
    if not url:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # An IPv6 literal keeps its brackets.
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def compute_job_facet_fields(result: Mapping[str, Any], server_url: str | None) -> dict[str, Any]:
    """The facet's content from the operator's result dict (its XCom ``return_value``).

    Keys are spelled as in Insight's own job documents (camelCase). Unknown values become None;
    ``executionAttempts`` is an int or None.
    """
    attempts = result.get("execution_attempts")

    def text(name: str) -> str | None:
        value = result.get(name)
        return value if isinstance(value, str) and value else None

    return {
        "computeJobId": text("compute_job_id"),
        "status": text("status"),
        "modelStatus": text("model_status"),
        "executionAttempts": attempts if type(attempts) is int else None,
        "serverUrl": public_url(server_url),
    }


def operator_lineage(fields: Mapping[str, Any]) -> Any:
    """An ``OperatorLineage`` with the ``insight_compute_job`` run facet; None without OpenLineage.

    The return type is ``Any`` because the OpenLineage classes exist only when installed.
    """
    facet_class = _facet_class()
    lineage_class = openlineage_operator_lineage()
    if facet_class is None or lineage_class is None:
        return None
    return lineage_class(run_facets={FACET_NAME: facet_class(**fields)})


@functools.cache
def _facet_class() -> type[Any] | None:
    """The run-facet class, defined on first use over the installed client's ``RunFacet``."""
    try:
        import attrs
        from openlineage.client.facet_v2 import RunFacet  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    if openlineage_operator_lineage() is None:
        return None  # the facet is only worth building when the provider can report it

    @attrs.define
    class InsightComputeJobRunFacet(RunFacet):  # type: ignore[misc, unused-ignore]
        """The FICO Xpress Insight compute job an Airflow task ran."""

        # Field names are camelCase, as OpenLineage facets and Insight's job documents spell them.
        computeJobId: str | None = None
        status: str | None = None
        modelStatus: str | None = None
        executionAttempts: int | None = None
        serverUrl: str | None = None

        @staticmethod
        def _get_schema() -> str:
            return FACET_SCHEMA_URL

    return InsightComputeJobRunFacet
