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


# ----------------------------------------------------------------------------- the type table

#: One literal frame per server message type, as §B4 of the protocol reference shows them.
LITERAL_SERVER_FRAMES = {
    "JOB_STATUS_UPDATED": '{"computeJobId":"j1","messageType":"JOB_STATUS_UPDATED",'
    '"messagePayload":{"status":"EXECUTING","executionAttempts":1}}',
    "CURRENT_JOB_STATUS": '{"computeJobId":"j1","messageType":"CURRENT_JOB_STATUS",'
    '"messagePayload":{"status":"QUEUED"}}',
    "RUNLOG_UPDATED": '{"computeJobId":"j1","messageType":"RUNLOG_UPDATED",'
    '"messagePayload":{"startLine":0,"endLines":1,"lines":["a","b"]}}',
    "RUNLOG_COMPLETED": '{"computeJobId":"j1","messageType":"RUNLOG_COMPLETED",'
    '"messagePayload":{"totalLines":2}}',
    "APP_MESSAGE": '{"computeJobId":"j1","messageType":"APP_MESSAGE","messagePayload":'
    '{"appMessageId":"a1","appMessageType":"GAPNOTIFY","appMessage":{"MIPOBJVAL":1.5}}}',
    "ERROR": '{"computeJobId":"j1","messageType":"ERROR",'
    '"messagePayload":{"errorType":"COMPUTE_JOB_NOT_FOUND","errorMessage":"gone"}}',
    "PING": '{"messageType":"PING","messagePayload":{"n":1}}',
}


@pytest.mark.parametrize("wire_name", sorted(LITERAL_SERVER_FRAMES))
def test_each_server_type_decodes_to_the_class_the_table_names(wire_name: str) -> None:
    decoded = m.decode_server_message(LITERAL_SERVER_FRAMES[wire_name])
    assert type(decoded) is m.SERVER_MESSAGE_TYPES[wire_name]
    names = {type(decoded).MESSAGE_TYPE, getattr(type(decoded), "CURRENT_MESSAGE_TYPE", None)}
    assert wire_name in names


def test_the_tables_cover_every_message_class_and_its_encoding() -> None:
    assert set(m.SERVER_MESSAGE_TYPES) == set(LITERAL_SERVER_FRAMES)
    client = [
        m.UpdateToken("t"),
        m.Subscribe((m.Subscription("j1", 1, 4),)),
        m.AppMessageResponse("j1", "a1"),
        m.Pong({"n": 1}),
    ]
    assert {type(message) for message in client} == set(m.CLIENT_MESSAGE_TYPES.values())
    for message in client:
        text = m.encode_client_message(message)
        assert f'"messageType":"{type(message).MESSAGE_TYPE}"' in text
        assert m.CLIENT_MESSAGE_TYPES[type(message).MESSAGE_TYPE] is type(message)


def test_app_message_response_with_controls_matches_the_reference_frame() -> None:
    # §B4.7.3's example answer, byte for byte (our encoder writes compact JSON).
    literal = (
        '{"computeJobId":"j1","messageType":"APP_MESSAGE_RESPONSE","messagePayload":'
        '{"appMessageId":"a1","appMessage":{"interruptSolve":false,"controls":{"XPRS_X":"newvalue"}}}}'
    )
    response = m.AppMessageResponse("j1", "a1", controls={"XPRS_X": "newvalue"})
    assert m.encode_client_message(response) == literal
    assert m.decode_client_message(literal) == response
    bare = m.encode_client_message(m.AppMessageResponse("j1", "a1", interrupt_solve=True))
    assert '"appMessage":{"interruptSolve":true}}' in bare


def test_controls_that_are_not_an_object_are_refused_by_the_strict_decoder() -> None:
    text = (
        '{"computeJobId":"j1","messageType":"APP_MESSAGE_RESPONSE","messagePayload":'
        '{"appMessageId":"a1","appMessage":{"interruptSolve":false,"controls":[1]}}}'
    )
    with pytest.raises(RemoteProtocolError, match="controls"):
        m.decode_client_message(text)
