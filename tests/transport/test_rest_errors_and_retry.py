"""The pure parts of the REST transport: error bodies, status mapping, Retry-After, backoff."""

from __future__ import annotations

import dataclasses
import email.utils
import json
import random
import ssl

import pytest

from airflow_insight.exceptions import (
    AuthenticationError,
    ConfigurationError,
    InsightError,
    JobNotFound,
    LocalProtocolError,
    PermissionDenied,
    ServerError,
    SubmitRejected,
    TransportError,
)
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport.errors import (
    Operation,
    describe_error_body,
    error_for_status,
    handshake_error,
    unescape_js,
)
from airflow_insight.transport.network import tls_context
from airflow_insight.transport.retry import (
    RetryPolicy,
    backoff_delay_seconds,
    parse_retry_after,
    wait_before_retry,
)

NOT_FOUND = {
    "error": {
        "code": "FICO-Platform-Http-404",
        "desc": "Not Found",
        "message": "Not Found",
        "innerError": {
            "code": "OPTI-Insight-Persistence-DocumentNotFound",
            "desc": "Document not found",
            "message": "Unable to find document",
            "innerError": None,
        },
        "details": [],
        "traceId": "0000000000000abc",
    }
}


def test_inner_message_is_preferred() -> None:
    assert describe_error_body(json.dumps(NOT_FOUND).encode()) == "Unable to find document"


def test_outer_message_then_desc_when_no_inner_message() -> None:
    body = {"error": {"desc": "Conflict", "message": "Job exists", "innerError": None}}
    assert describe_error_body(json.dumps(body)) == "Job exists"
    body = {"error": {"desc": "Conflict", "message": "", "innerError": {"code": "x"}}}
    assert describe_error_body(json.dumps(body)) == "Conflict"


def test_details_are_appended_with_their_targets() -> None:
    body = {
        "error": {
            "message": "Unprocessable Entity",
            "innerError": {"message": "Entity processing failed"},
            "details": [{"message": "must be at most 256", "target": "execution.threads"}, 7],
        }
    }
    assert describe_error_body(json.dumps(body)) == (
        "Entity processing failed; execution.threads: must be at most 256"
    )


def test_javascript_escaping_is_undone() -> None:
    # The server escapes before JSON encoding, so the decoded string still holds backslashes.
    escaped = r"Can\'t find \"job-1\" in C:\\jobs\/x\tend"
    body = json.dumps({"error": {"message": escaped}})
    assert describe_error_body(body) == 'Can\'t find "job-1" in C:\\jobs/x\tend'
    assert unescape_js(r"a\nb\rc\fd\be") == "a\nb\rc\fd\be"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", None),
        (b"   ", None),
        (b"<html><body>Bad gateway</body></html>", None),
        (b"upstream connect error", "upstream connect error"),
        (b"[1, 2]", None),
        (b'{"error": "x"}', None),
        (b"\xff\xfe broken", "\ufffd\ufffd broken"),
        # Nested too deeply for the JSON decoder: kept as a short text, never a RecursionError.
        (b"[" * 100_000, "[" * 497 + "..."),
    ],
)
def test_unusual_bodies_are_survived(body: bytes, expected: str | None) -> None:
    assert describe_error_body(body) == expected


def test_long_messages_are_clipped() -> None:
    text = describe_error_body(json.dumps({"error": {"message": "x" * 5000}}))
    assert text is not None and len(text) == 500 and text.endswith("...")


JOB = Operation("reading compute job 'j1'", compute_job_id="j1")
SUBMIT = Operation("submitting compute job 'j1'", compute_job_id="j1", is_submit=True)
TOKEN = Operation("requesting an Insight access token", is_token=True)
OTHER = Operation("fetching the run log")


@pytest.mark.parametrize(
    ("status", "operation", "kind", "advice"),
    [
        (401, TOKEN, AuthenticationError, "check the client id (login) and secret (password)"),
        (401, JOB, AuthenticationError, "check the client id"),
        (403, JOB, PermissionDenied, "ask an Insight administrator"),
        (404, JOB, JobNotFound, "does not exist"),
        (404, TOKEN, ConfigurationError, "check the host and path prefix"),
        (404, OTHER, InsightError, "answered HTTP 404"),
        (409, SUBMIT, SubmitRejected, "choose another id, or re-attach"),
        (422, SUBMIT, SubmitRejected, "fix the request"),
        (400, SUBMIT, SubmitRejected, "fix the request"),
        (429, SUBMIT, ServerError, "retry later"),
        (500, JOB, ServerError, "retry later"),
        (503, OTHER, ServerError, "retry later"),
        (406, JOB, LocalProtocolError, "v2 API"),
        (415, SUBMIT, LocalProtocolError, "v2 API"),
        (409, JOB, InsightError, "answered HTTP 409"),
    ],
)
def test_status_mapping(
    status: int, operation: Operation, kind: type[InsightError], advice: str
) -> None:
    error = error_for_status(status, "server words", operation, retry_after_seconds=3.0)
    assert type(error) is kind
    assert advice in str(error)
    assert f"HTTP {status}: server words" in str(error)
    assert str(error).startswith(operation.description)


def test_mapped_errors_carry_their_data() -> None:
    not_found = error_for_status(404, None, JOB)
    assert isinstance(not_found, JobNotFound) and not_found.compute_job_id == "j1"
    rejected = error_for_status(409, None, SUBMIT)
    assert isinstance(rejected, SubmitRejected) and rejected.status_code == 409
    assert rejected.permanent
    busy = error_for_status(429, None, JOB, retry_after_seconds=2.5)
    assert isinstance(busy, ServerError)
    assert (busy.status_code, busy.retry_after_seconds) == (429, 2.5)
    assert not busy.permanent


NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("3", 3.0),
        (" 0.25 ", 0.25),
        ("-1", None),
        ("nan", None),
        ("soon", None),
        (email.utils.formatdate(NOW + 7, usegmt=True), 7.0),
        (email.utils.formatdate(NOW - 60, usegmt=True), 0.0),
    ],
)
def test_retry_after_parsing(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, NOW) == expected


def test_backoff_grows_exponentially_with_equal_jitter_and_a_cap() -> None:
    policy = RetryPolicy(max_attempts=8, base_delay_seconds=1.0, max_delay_seconds=5.0)
    rng = random.Random(7)
    for attempt, step in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (7, 5.0)]:
        for _ in range(50):
            delay = backoff_delay_seconds(policy, attempt, rng)
            assert step / 2 <= delay <= step
    delays = {backoff_delay_seconds(policy, 3, rng) for _ in range(20)}
    assert len(delays) > 1  # jitter: not all workers retry in lockstep


def test_wait_before_retry_is_bounded_and_honours_retry_after() -> None:
    policy = RetryPolicy(max_attempts=3, base_delay_seconds=0.1, max_retry_after_seconds=10.0)
    rng = random.Random(1)
    assert wait_before_retry(policy, 1, 4.0, rng) == 4.0
    assert wait_before_retry(policy, 2, None, rng) is not None
    assert wait_before_retry(policy, 3, None, rng) is None  # attempts used up
    assert wait_before_retry(policy, 1, 11.0, rng) is None  # too long: give the slot back


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(base_delay_seconds=-1)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, AuthenticationError),
        (403, PermissionDenied),
        (429, ServerError),
        (503, ServerError),
        (404, TransportError),
    ],
)
def test_handshake_error_maps_the_status_for_both_drivers(
    status: int, kind: type[InsightError]
) -> None:
    error = handshake_error(status, "ws://insight.example/api/compute-job-messages")
    assert type(error) is kind
    assert f"HTTP {status}" in str(error)
    assert "ws://insight.example/api/compute-job-messages" in str(error)
    if isinstance(error, ServerError):
        assert error.status_code == status


def test_tls_context_without_verification_ignores_a_stale_ca_bundle() -> None:
    settings = ConnectionSettings(
        base_url="https://insight.example",
        client_id="c",
        client_secret="s",
        verify_tls=False,
        ca_bundle_path="/nonexistent/ca.pem",
    )
    context = tls_context(settings)
    assert context.verify_mode is ssl.CERT_NONE and not context.check_hostname
    verifying = tls_context(dataclasses.replace(settings, verify_tls=True, ca_bundle_path=None))
    assert verifying.verify_mode is ssl.CERT_REQUIRED and verifying.check_hostname
