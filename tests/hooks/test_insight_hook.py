"""InsightHook and settings_from_connection against real Airflow connections (no metadata DB)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from airflow.sdk import Connection
from airflow.sdk.exceptions import AirflowFailException

from airflow_insight.exceptions import ConfigurationError, ServerError
from airflow_insight.hooks.insight import (
    InsightHook,
    RunLogSink,
    airflow_error,
    base_url,
    job_result,
    settings_from_connection,
)
from airflow_insight.protocol.outcome import JobOutcome
from airflow_insight.transport.rest import InsightRestClient

SECRET = "s3cret-value-xyz"


def _json_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: Any) -> None:
    document = {"conn_type": "insight", "login": "client-1", "password": SECRET, **fields}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(document))


def test_default_connection_in_json_form_keeps_typed_extras(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    extra = {
        "max_age_seconds": 600,
        "verify_tls": False,
        "connect_timeout_seconds": 2.5,
        "read_timeout_seconds": 30,
        "accepted_model_statuses": ["OK", "SOLVED"],
        "ui_base_url": "https://ui.example.com/insight",
    }
    _json_connection(
        monkeypatch, "insight_default", host="https://insight.example.com:8443/insight", extra=extra
    )
    hook = InsightHook()
    settings = hook.get_settings()
    assert settings.base_url == "https://insight.example.com:8443/insight/"
    assert settings.client_id == "client-1"
    assert settings.client_secret == SECRET
    assert settings.token_max_age_seconds == 600
    assert settings.verify_tls is False
    assert settings.connect_timeout_seconds == 2.5
    assert settings.read_timeout_seconds == 30.0
    assert settings.accepted_model_statuses == frozenset({"OK", "SOLVED"})
    assert settings.ui_base_url == "https://ui.example.com/insight"
    assert SECRET not in repr(settings)


def test_hook_declares_the_airflow_class_attributes() -> None:
    assert InsightHook.conn_name_attr == "insight_conn_id"
    assert InsightHook.default_conn_name == "insight_default"
    assert InsightHook.conn_type == "insight"
    assert InsightHook.hook_name == "FICO Xpress Insight"
    assert InsightHook(insight_conn_id="other").insight_conn_id == "other"


def test_uri_form_with_string_extras_and_scheme_in_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_INSIGHT_URI",
        "insight://client-1:s3cret-value-xyz@insight.example.com:8080/http"
        "?verify_tls=false&read_timeout_seconds=5&max_age_seconds=300"
        "&accepted_model_statuses=OK%2CSOLVED",
    )
    settings = InsightHook("insight_uri").get_settings()
    assert settings.base_url == "http://insight.example.com:8080/"
    assert settings.verify_tls is False
    assert settings.read_timeout_seconds == 5.0
    assert settings.token_max_age_seconds == 300
    assert settings.accepted_model_statuses == frozenset({"OK", "SOLVED"})
    assert settings.client_secret == SECRET


def test_defaults_when_extras_are_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    _json_connection(monkeypatch, "insight_plain", host="https://insight.example.com")
    settings = InsightHook("insight_plain").get_settings()
    assert settings.base_url == "https://insight.example.com/"
    assert settings.verify_tls is True
    assert settings.token_max_age_seconds == 900
    assert settings.accepted_model_statuses == frozenset({"OK"})


@pytest.mark.parametrize(
    ("host", "schema", "port", "expected"),
    [
        ("insight.example.com", "https", None, "https://insight.example.com"),
        ("insight.example.com", "http", 8080, "http://insight.example.com:8080"),
        ("insight.example.com/prefix", "HTTPS", 8443, "https://insight.example.com:8443/prefix"),
        ("http://127.0.0.1:9000/insight/", None, None, "http://127.0.0.1:9000/insight"),
        ("https://insight.example.com/p", None, 8443, "https://insight.example.com:8443/p"),
    ],
)
def test_base_url_from_host_schema_and_port(
    host: str, schema: str | None, port: int | None, expected: str
) -> None:
    assert base_url(host, schema, port) == expected


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"host": ""}, "host is empty"),
        ({"host": "insight.example.com", "schema": "ftp"}, "schema 'ftp'"),
        ({"host": "https://h.example:1/x", "port": 2}, "different ports"),
        ({"host": "h.example", "extra": {"verify_tls": "maybe"}}, "'verify_tls' must be true"),
        ({"host": "h.example", "extra": {"max_age_seconds": "ten"}}, "must be a number"),
        ({"host": "h.example", "extra": {"max_age_seconds": 0}}, "positive"),
        ({"host": "h.example", "extra": {"max_age_seconds": 1.5}}, "whole number"),
        ({"host": "h.example", "extra": {"read_timeout_seconds": -1}}, "positive"),
        ({"host": "h.example", "extra": {"connect_timeout_seconds": True}}, "number"),
        ({"host": "h.example", "extra": {"accepted_model_statuses": " , "}}, "is empty"),
        ({"host": "h.example", "extra": {"accepted_model_statuses": [1]}}, "list of strings"),
        ({"host": "h.example", "extra": {"ui_base_url": "not a url"}}, "http(s) URL"),
        ({"host": "h.example", "extra": {"ca_bundle_path": 5}}, "must be a string"),
        ({"host": "https://h.example", "login": ""}, "client id and a secret"),
    ],
)
def test_bad_values_raise_configuration_error_naming_the_connection(
    monkeypatch: pytest.MonkeyPatch, fields: dict[str, Any], fragment: str
) -> None:
    _json_connection(monkeypatch, "insight_bad", **fields)
    with pytest.raises(ConfigurationError) as caught:
        InsightHook("insight_bad").get_settings()
    message = str(caught.value)
    assert "'insight_bad'" in message and fragment in message
    assert SECRET not in message


def test_unknown_extras_are_reported(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _json_connection(
        monkeypatch, "insight_typo", host="https://h.example", extra={"verify_tsl": False}
    )
    with caplog.at_level(logging.WARNING):
        settings = InsightHook("insight_typo").get_settings()
    assert settings.verify_tls is True
    assert "verify_tsl" in caplog.text


def test_settings_from_an_already_fetched_connection() -> None:
    conn = Connection(
        conn_id="fetched",
        conn_type="insight",
        host="127.0.0.1",
        schema="http",
        port=8765,
        login="demo-client",
        password="demo-secret",
        extra=json.dumps({"verify_tls": "true", "ca_bundle_path": "/tmp/ca.pem"}),
    )
    settings = settings_from_connection(conn)
    assert settings.base_url == "http://127.0.0.1:8765/"
    assert settings.ca_bundle_path == "/tmp/ca.pem"
    assert settings.verify_tls is True


def test_rest_client_is_cached_per_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    _json_connection(monkeypatch, "insight_cached", host="http://127.0.0.1:1")
    hook = InsightHook("insight_cached")
    client = hook.get_rest_client()
    assert isinstance(client, InsightRestClient)
    assert hook.get_rest_client() is client
    assert InsightHook("insight_cached").get_rest_client() is not client
    client.close()


def test_job_result_and_accepted_statuses_shared_by_operator_and_sensor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    extra = {"accepted_model_statuses": "OK,SOLVED"}
    _json_connection(monkeypatch, "insight_res", host="https://h.example/insight", extra=extra)
    hook = InsightHook("insight_res")
    outcome = JobOutcome.from_job_document(
        "j1",
        {"status": "COMPLETED", "modelStatus": "OK", "resultsUrl": "/api/r/1", "runLogUrl": None},
    )
    expected = {
        "compute_job_id": "j1",
        "status": "COMPLETED",
        "model_status": "OK",
        "execution_attempts": 0,
        "result_url": "https://h.example/insight/api/r/1",
        "run_log_url": None,
    }
    assert hook.job_result(outcome) == expected
    assert job_result(hook.get_settings(), outcome) == expected
    assert hook.accepted_model_statuses() == frozenset({"OK", "SOLVED"})
    assert hook.accepted_model_statuses(["X"]) == frozenset({"X"})
    assert hook.run_log_after(outcome, -1) == []  # no run log URL: nothing to fetch


def test_airflow_error_fails_at_once_only_what_a_retry_cannot_fix() -> None:
    permanent = ConfigurationError("bad host")
    assert isinstance(airflow_error(permanent), AirflowFailException)
    assert "bad host" in str(airflow_error(permanent))
    transient = ServerError("busy", status_code=503)
    assert airflow_error(transient) is transient


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("https://someone:hunter2@insight.example.com", "user name or password"),
        ("https://insight.example.com/base?x=1", "query or fragment"),
        ("https://insight.example.com/base#frag", "query or fragment"),
    ],
)
def test_server_url_with_credentials_or_query_is_refused(
    monkeypatch: pytest.MonkeyPatch, host: str, message: str
) -> None:
    _json_connection(monkeypatch, "insight_default", host=host)
    with pytest.raises(ConfigurationError, match=message) as caught:
        InsightHook().get_settings()
    assert "hunter2" not in str(caught.value)


def test_a_missing_connection_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_NOPE", raising=False)
    with pytest.raises(ConfigurationError, match="'nope' does not exist") as caught:
        InsightHook("nope").get_settings()
    assert caught.value.permanent  # so the task fails at once, without retries
    assert isinstance(airflow_error(caught.value), AirflowFailException)


def test_follower_config_takes_the_unreachable_limit_from_the_operator_or_the_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _json_connection(
        monkeypatch,
        "limits",
        host="https://insight.example.com",
        extra=json.dumps({"unreachable_limit_seconds": 120}),
    )
    hook = InsightHook("limits")
    from_connection = hook.follower_config(silence_limit_seconds=7.0)
    assert from_connection.unreachable_limit_seconds == 120.0
    assert from_connection.silence_limit_seconds == 7.0
    explicit = hook.follower_config(silence_limit_seconds=7.0, unreachable_limit_seconds=30.0)
    assert explicit.unreachable_limit_seconds == 30.0


def test_job_end_returns_the_result_or_raises_the_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow_insight.exceptions import JobCancelled, JobFailed

    _json_connection(monkeypatch, "ends", host="https://insight.example.com")
    hook = InsightHook("ends")
    done = JobOutcome("j1", "COMPLETED", model_status="OK", result_url="/r")
    assert hook.job_end(done)["result_url"] == "https://insight.example.com/r"
    with pytest.raises(JobFailed, match="model status 'INFEASIBLE'"):
        hook.job_end(JobOutcome("j1", "COMPLETED", model_status="INFEASIBLE"))
    assert hook.job_end(JobOutcome("j1", "COMPLETED", model_status="INFEASIBLE"), ["INFEASIBLE"])
    with pytest.raises(JobCancelled):
        hook.job_end(JobOutcome("j1", "CANCELLED"))


@pytest.mark.parametrize(
    ("count", "size", "pauses"),
    [(5, 2, [2, 4]), (4, 2, [2]), (3, 200, []), (0, 200, [])],
)
def test_the_run_log_loop_pauses_between_chunks_never_after_the_last(
    count: int, size: int, pauses: list[int]
) -> None:
    """The trigger gives its loop back at each pause; a pause after the last line would only
    delay the next event."""
    lines = [f"line {n}" for n in range(count)]
    assert list(RunLogSink().in_chunks(lines, size)) == pauses
