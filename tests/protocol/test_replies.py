"""Which frames the core answers at once, read from literal wire text (§A2, §A10)."""

from __future__ import annotations

import pytest

from airflow_insight.protocol.replies import needs_immediate_reply

URGENT = [
    '{"messageType":"PING","messagePayload":"abc"}',
    '{"messageType": "PING"}',
    '{"computeJobId":"job-1","messageType":"APP_MESSAGE","messagePayload":'
    '{"appMessageId":"app-3","appMessageType":"GAPNOTIFY","appMessage":{"MIPRELGAP":0.004}}}',
]

NOT_URGENT = [
    '{"computeJobId":"job-1","messageType":"RUNLOG_UPDATED","messagePayload":'
    '{"startLine":0,"lines":["solving","done"]}}',
    # The names inside a line: quoted lines hold them only escaped, or as a whole line.
    '{"computeJobId":"job-1","messageType":"RUNLOG_UPDATED","messagePayload":'
    '{"startLine":0,"lines":["say \\"PING\\" and \\"APP_MESSAGE\\""]}}',
    '{"computeJobId":"job-1","messageType":"RUNLOG_UPDATED","messagePayload":'
    '{"startLine":0,"lines":["PING","APP_MESSAGE"]}}',
    '{"computeJobId":"job-1","messageType":"JOB_STATUS_UPDATED","messagePayload":'
    '{"status":"EXECUTING"}}',
    '{"messageType":"PONG","messagePayload":"abc"}',
    # Undecodable: not urgent, the core rejects it in its turn.
    '{"messageType":"PING"',
    '["PING"]',
    "",
]


@pytest.mark.parametrize("text", URGENT)
def test_pings_and_app_messages_need_an_immediate_reply(text: str) -> None:
    assert needs_immediate_reply(text)
    assert needs_immediate_reply(text.encode())


@pytest.mark.parametrize("text", NOT_URGENT)
def test_other_frames_wait_their_turn(text: str) -> None:
    assert not needs_immediate_reply(text)
    assert not needs_immediate_reply(text.encode())


def test_invalid_utf8_is_not_urgent() -> None:
    assert not needs_immediate_reply(b'{"messageType":"PING","x":"\xff"}')
