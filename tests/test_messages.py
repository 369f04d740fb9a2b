"""The message codec: round trips, both spellings, liberal and strict decoding."""

from __future__ import annotations

import pytest

from airflow_insight.exceptions import RemoteProtocolError
from airflow_insight.protocol import messages as m


def test_status_report_round_trips_in_both_spellings() -> None:
    report = m.JobStatusReport(
        "job-1", "COMPLETED", "OK", 1, "/p", "/r", "/api/scenarios/s/run-log", "/m"
    )
    for spelling in (m.CURRENT_SPELLING, m.LEGACY_SPELLING):
        assert m.decode_server_message(m.encode_server_message(report, spelling)) == report


def test_legacy_spelling_uses_the_2020_field_names() -> None:
    report = m.JobStatusReport("job-1", "COMPLETED", result_url="/r", job_metrics_url="/m")
    text = m.encode_server_message(report, m.LEGACY_SPELLING)
    assert '"resultsUrl":"/r"' in text and '"metricsUrl":"/m"' in text
    assert '"prettyStatus":"Completed"' in text


def test_run_log_accepts_end_line_and_end_lines() -> None:
    batch = m.RunLogUpdated("j", 3, ("a", "b"), 4)
    for spelling in (m.CURRENT_SPELLING, m.LEGACY_SPELLING):
        decoded = m.decode_server_message(m.encode_server_message(batch, spelling))
        assert decoded == batch
    assert m.RunLogUpdated("j", 3, ("a", "b")).last_line == 4


def test_unknown_message_type_is_kept() -> None:
    decoded = m.decode_server_message('{"messageType":"NEW_THING","messagePayload":[1]}')
    assert decoded == m.UnknownMessage("NEW_THING", None, [1])


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "[]",
        '{"messagePayload":{}}',
        '{"messageType":"RUNLOG_UPDATED"}',
        "[" * 100_000 + "]" * 100_000,
    ],
)
def test_server_messages_that_cannot_be_used_raise(text: str) -> None:
    with pytest.raises(RemoteProtocolError):
        m.decode_server_message(text)
    with pytest.raises(RemoteProtocolError):
        m.decode_client_message(text)


def test_client_messages_round_trip() -> None:
    messages: list[m.ClientMessage] = [
        m.UpdateToken("t0k3n"),
        m.Subscribe((m.Subscription("job-1", 1, -1), m.Subscription("job-2", 2, 69))),
        m.AppMessageResponse("job-1", "app-1"),
        m.Pong({"n": 1}),
    ]
    for message in messages:
        assert m.decode_client_message(m.encode_client_message(message)) == message


def test_update_token_repr_hides_the_token() -> None:
    assert "s3cr3t" not in repr(m.UpdateToken("s3cr3t"))


def test_strict_client_decoding_names_the_problem() -> None:
    with pytest.raises(RemoteProtocolError, match="lastRunLogLine"):
        m.decode_client_message(
            '{"messageType":"SUBSCRIBE","messagePayload":'
            '{"subscriptions":[{"computeJobId":"j","executionAttempts":1}]}}'
        )


def test_frames_as_bytes_must_be_utf8() -> None:
    text = '{"messageType":"RUNLOG_UPDATED","computeJobId":"j","messagePayload":'
    good = text + '{"startLine":0,"lines":["\u00e9t\u00e9 \u2713"]}}'
    assert m.decode_server_message(good.encode("utf-8")) == m.RunLogUpdated("j", 0, ("été ✓",))
    invalid = (text + '{"startLine":0,"lines":["').encode() + b"\xff\xfe" + b'"]}}'
    with pytest.raises(RemoteProtocolError, match="not valid UTF-8"):
        m.decode_server_message(invalid)
    # json.loads alone would guess UTF-16 from these bytes and accept them.
    with pytest.raises(RemoteProtocolError):
        m.decode_server_message(good.encode("utf-16"))
    with pytest.raises(RemoteProtocolError, match="not valid UTF-8"):
        m.decode_client_message(b'{"messageType":"PONG","messagePayload":"\xc3"}')
