"""The blocking driver's socket opener: no TLS work for ws://, frames handed over undecoded."""

from __future__ import annotations

from pathlib import Path

import websocket

from airflow_insight.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Emulator
from airflow_insight.protocol import messages as m
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport.rest import InsightRestClient
from airflow_insight.transport.sync_handshake import open_socket


def test_plain_ws_builds_no_tls_context_and_skips_the_utf8_check(tmp_path: Path) -> None:
    """A CA bundle that does not exist would fail any TLS context built from it (and building
    one reads the CA store: tens of ms per socket); a ws:// socket must not need one."""
    with Emulator() as emulator:
        settings = ConnectionSettings(
            emulator.base_url,
            DEMO_CLIENT_ID,
            DEMO_CLIENT_SECRET,
            ca_bundle_path=f"{tmp_path}/no-such-bundle.pem",
            connect_timeout_seconds=5.0,
        )
        assert settings.websocket_url.startswith("ws://")
        with InsightRestClient(
            ConnectionSettings(emulator.base_url, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
        ) as rest:
            token = rest.current_token().value
        ws, connection_id = open_socket(settings, token)
        try:
            assert connection_id
            # The core decodes text frames itself (strictly as UTF-8): websocket-client's own
            # pure-Python check is off.
            assert ws.frame_buffer.skip_utf8_validation is True
            ws.send(m.encode_client_message(m.Subscribe((m.Subscription("nope", 0, -1),))))
            ws.settimeout(5.0)
            opcode, data = ws.recv_data()
            assert opcode == websocket.ABNF.OPCODE_TEXT
            assert isinstance(data, bytes)
            message = m.decode_server_message(data)
            assert isinstance(message, m.ErrorReported)
            assert message.error_type == m.COMPUTE_JOB_NOT_FOUND
        finally:
            ws.close(timeout=1.0)
