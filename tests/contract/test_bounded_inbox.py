"""Both drivers hold a bounded inbox under a flood the sink cannot keep up with, lose no line,
and still answer pings and a solver callback (real sockets, the emulator on 127.0.0.1 port 0).

The inbox limit is shrunk for the test so that a short flood overfills it many times over; the
most frame text ever held must stay within the limit plus one frame. While the reader waits for
room, the frames behind the backlog (pings, the callback) wait in the network buffers until the
sink has taken what came before them: the server's limits here leave room for that backlog
(docs/design.md, "Bounded inboxes"); the tests of an unpaused backlog
(``test_driver_contract.py``) keep their tight limits. No wall-clock assertion of ours.
"""

from __future__ import annotations

import dataclasses
import time
from types import ModuleType

import pytest
from support import assert_pings_answered

from airflow_insight.emulator import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Emulator, EmulatorConfig
from airflow_insight.protocol import inbox
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport import async_driver, sync_driver
from airflow_insight.transport.rest import InsightRestClient
from contract.test_driver_contract import (
    CALLBACK_IN_FLOOD,
    FAST_FOLLOWER,
    SLOW_SINK_FLOOD,
    SLOW_SINK_SECONDS_PER_LINE,
    _request,
)

#: Small enough that the flood's few hundred kB of frames fill it many times over.
SMALL_LIMIT_CHARS = 16 * 1024
#: Largest frame of the flood: a batch of 200 short lines, with room for its JSON envelope.
LARGEST_FRAME_CHARS = 32 * 1024
#: The callback flood, with a callback limit that the network backlog ahead of it fits in.
FLOOD = dataclasses.replace(CALLBACK_IN_FLOOD, app_message_timeout_seconds=30.0)


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """Frequent pings, with a pong limit that the network backlog ahead of a ping fits in."""
    return EmulatorConfig(ping_interval_seconds=0.05, pong_timeout_seconds=30.0)


@pytest.fixture
def peak(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Shrink both drivers' inbox limit; the most characters any inbox held, as it grows."""
    monkeypatch.setattr(sync_driver, "INBOX_LIMIT_CHARS", SMALL_LIMIT_CHARS)
    monkeypatch.setattr(async_driver, "INBOX_LIMIT_CHARS", SMALL_LIMIT_CHARS)
    seen = [0]
    take = inbox.InboxRoom.take

    def recording(room: inbox.InboxRoom, chars: int) -> None:
        take(room, chars)
        seen[0] = max(seen[0], room.held)

    monkeypatch.setattr(inbox.InboxRoom, "take", recording)
    return seen


def test_a_flood_stays_within_the_inbox_limit_and_pings_and_callbacks_are_answered(
    driver: ModuleType,
    peak: list[int],
    emulator: Emulator,
    settings: ConnectionSettings,
    rest: InsightRestClient,
) -> None:
    script = FLOOD
    emulator.add_script("*", script)
    lines: list[str] = []
    batch_pause = SLOW_SINK_SECONDS_PER_LINE * script.batch_size

    def forward(line: str) -> None:
        lines.append(line)
        if len(lines) % script.batch_size == 0:
            time.sleep(batch_pause)  # Holds the loop, as a slow logger does.

    job_id = f"bounded-inbox-{driver.NAME}"
    outcome = driver.follow_job(
        settings,
        rest,
        _request(job_id),
        None,
        config=FAST_FOLLOWER,
        on_line=forward,
        timeout_seconds=60.0,
    )
    exchanges = emulator.record.app_message_exchanges(job_id)
    assert outcome.status == "COMPLETED", f"{outcome}; callbacks {exchanges}"
    assert lines == emulator.run_log(job_id)
    assert 0 < peak[0] <= SMALL_LIMIT_CHARS + LARGEST_FRAME_CHARS, f"inbox peak {peak[0]}"
    [exchange] = emulator.record.app_message_exchanges(job_id)
    assert exchange["timedOutAt"] is None, f"the callback answer came too late: {exchange}"
    assert_pings_answered(emulator)
    assert len(emulator.record.of_kind("ws_open")) == 1, "the socket was closed during the flood"


#: Tokens that live 3 s, during a slow-sink flood that leaves about 9 s of backlog: the refresh
#: is due after 2 s, while thousands of lines wait in the inbox (below its limit: the reader never
#: waits here), so an answer queued behind them would come seconds after the token expired. The
#: server closes a socket whose token expires before an ``UPDATE_TOKEN``. The answer's own path
#: (a thread, then a few turns of a loop that a blocking sink holds 0.15 s per batch) fits in
#: the second left.
SHORT_TOKENS = {"token_max_age_cap_seconds": 3.0}


def test_a_token_refresh_is_not_queued_behind_a_run_log_backlog(driver: ModuleType) -> None:
    config = EmulatorConfig(ping_interval_seconds=0.1, pong_timeout_seconds=5.0, **SHORT_TOKENS)
    script = dataclasses.replace(SLOW_SINK_FLOOD, log_lines=12_000)
    lines: list[str] = []
    batch_pause = SLOW_SINK_SECONDS_PER_LINE * script.batch_size

    def forward(line: str) -> None:
        lines.append(line)
        if len(lines) % script.batch_size == 0:
            time.sleep(batch_pause)  # Holds the loop, as a slow logger does.

    job_id = f"refresh-in-flood-{driver.NAME}"
    with Emulator(config) as emulator:
        emulator.add_script("*", script)
        settings = ConnectionSettings(emulator.base_url, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
        with InsightRestClient(settings) as rest:
            outcome = driver.follow_job(
                settings,
                rest,
                _request(job_id),
                None,
                config=FAST_FOLLOWER,
                on_line=forward,
                timeout_seconds=60.0,
            )
        assert outcome.status == "COMPLETED"
        assert lines == emulator.run_log(job_id)
        updates = emulator.record.of_kind("update_token")
        assert updates and all(update.data["valid"] for update in updates), updates
        closes = [entry.data for entry in emulator.record.of_kind("ws_close")]
        opened = len(emulator.record.of_kind("ws_open"))
        assert opened == 1, f"a token expired before its refresh arrived: {closes[:3]}"
