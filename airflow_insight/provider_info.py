"""Provider metadata for Airflow's provider discovery; plain data, imports nothing.

Airflow reads this through the ``apache_airflow_provider`` entry point. The connection form is
declared here (``conn-fields`` and ``ui-field-behaviour``, the Airflow 3.2+ way), so the API server
serves the form without importing the hook.
"""

from __future__ import annotations

from typing import Any

_INTEGRATION = "FICO Xpress Insight"

#: Extras of the ``insight`` connection, shown as typed fields in the connection form. The keys
#: are the plain extra names the hook reads (``extra["verify_tls"]``, ...).
_CONN_FIELDS: dict[str, dict[str, Any]] = {
    "max_age_seconds": {
        "label": "Token lifetime (seconds)",
        "description": "Lifetime asked for each bearer token; the server caps it (15 min default).",
        "schema": {"type": ["integer", "null"], "default": 900, "minimum": 1, "maximum": 3600},
    },
    "verify_tls": {
        "label": "Verify TLS certificate",
        "description": "Turn off only for a test server; prefer a CA bundle path instead.",
        "schema": {"type": ["boolean", "null"], "default": True},
    },
    "ca_bundle_path": {
        "label": "CA bundle path",
        "description": "PEM file of CA certificates for a private CA (needed on every worker and "
        "triggerer).",
        "schema": {"type": ["string", "null"]},
    },
    "connect_timeout_seconds": {
        "label": "Connect timeout (seconds)",
        "description": "How long to wait for a TCP/TLS connection to the server.",
        "schema": {"type": ["number", "null"], "default": 10, "minimum": 0},
    },
    "read_timeout_seconds": {
        "label": "Read timeout (seconds)",
        "description": "How long to wait for the server's answer to one REST call.",
        "schema": {"type": ["number", "null"], "default": 60, "minimum": 0},
    },
    "unreachable_limit_seconds": {
        "label": "Unreachable limit (seconds)",
        "description": "A followed job fails (and may be retried) after this long without any "
        "answer from the server.",
        "schema": {"type": ["number", "null"], "default": 600, "minimum": 1},
    },
    "accepted_model_statuses": {
        "label": "Accepted model statuses",
        "description": "Comma-separated modelStatus values that count as success at COMPLETED.",
        "schema": {"type": ["string", "null"], "default": "OK"},
    },
    "ui_base_url": {
        "label": "Insight web UI URL",
        "description": "Base URL of the Insight web client for the task's job link; "
        "defaults to the server URL.",
        "schema": {"type": ["string", "null"]},
    },
    "ui_job_url_template": {
        "label": "Job link template",
        "description": "Overrides the job link. Placeholders: {ui_base_url}, {app_id}, "
        "{scenario_id}, {compute_job_id}.",
        "schema": {"type": ["string", "null"]},
    },
}

_UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    # The port belongs in the URL, Insight has no schema, and every extra is a typed field above.
    "hidden-fields": ["schema", "port", "extra"],
    "relabeling": {
        "host": "Insight server URL",
        "login": "Client ID",
        "password": "Client secret",
    },
    "placeholders": {
        "host": "https://insight.example.com[:port][/prefix]",
        "login": "REST API client id (Insight user menu > API Credentials)",
        "password": "secret shown once when the client id was generated",
    },
}


def get_provider_info() -> dict[str, Any]:
    """Return the provider description Airflow reads through the entry point."""
    return {
        "package-name": "airflow-insight",
        "name": _INTEGRATION,
        "description": "Run FICO Xpress Insight compute jobs from Airflow DAGs and follow them "
        "over Insight's progress WebSocket.",
        "versions": ["0.1.0"],
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://www.fico.com/fico-xpress-optimization/docs/latest/insight5/compute/",
                "tags": ["software"],
            }
        ],
        "hooks": [
            {"integration-name": _INTEGRATION, "python-modules": ["airflow_insight.hooks.insight"]}
        ],
        "operators": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": ["airflow_insight.operators.insight"],
            }
        ],
        "sensors": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": ["airflow_insight.sensors.insight"],
            }
        ],
        "triggers": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": ["airflow_insight.triggers.insight"],
            }
        ],
        "connection-types": [
            {
                "connection-type": "insight",
                "hook-class-name": "airflow_insight.hooks.insight.InsightHook",
                "hook-name": "FICO Xpress Insight",
                "conn-fields": _CONN_FIELDS,
                "ui-field-behaviour": _UI_FIELD_BEHAVIOUR,
            }
        ],
        "extra-links": ["airflow_insight.links.InsightJobLink"],
    }
