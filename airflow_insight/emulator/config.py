"""The emulator's settings, one frozen value (see /tmp/emulator-api.md for the contract)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Literal

from airflow_insight.emulator.scripts import DEMO, JobScript
from airflow_insight.protocol.messages import CURRENT_SPELLING, Spelling

DEMO_CLIENT_ID = "demo-client"
DEMO_CLIENT_SECRET = "demo-secret"
#: Where the stand-in web client's job pages live under the server URL (emulator/web.py): the
#: path the provider's "Insight job" link opens (``links.DEFAULT_JOB_URL_TEMPLATE``).
WEB_CLIENT_PATH = "/insight"


def _demo_credentials() -> Mapping[str, str]:
    return {DEMO_CLIENT_ID: DEMO_CLIENT_SECRET}


@dataclasses.dataclass(frozen=True)
class EmulatorConfig:
    """How the emulator listens, authenticates, talks and runs jobs."""

    host: str = "127.0.0.1"
    port: int = 0
    #: e.g. "/insight": every route is served under it (a reverse proxy's prefix).
    path_prefix: str = ""
    #: client id -> secret; several pairs allowed.
    credentials: Mapping[str, str] = dataclasses.field(default_factory=_demo_credentials)
    #: Token lifetime is min(maxAge, cap) (§A3).
    token_max_age_cap_seconds: float = 900.0
    token_response: Literal["text", "json"] = "text"
    ping_interval_seconds: float = 30.0
    pong_timeout_seconds: float = 300.0
    #: Send {"messageType":"PING"} text messages instead of ping control frames (§A2).
    json_pings: bool = False
    spelling: Spelling = CURRENT_SPELLING
    #: 406/415 on a wrong Accept/Content-Type; False accepts anything readable.
    strict_media_types: bool = True
    default_script: JobScript = DEMO
    tls_cert_path: str | None = None
    tls_key_path: str | None = None
    #: Send RUNLOG_COMPLETED after a job's last line (it "may or may not be sent", §A6).
    send_runlog_completed: bool = True
    #: Request bodies above this get 413.
    max_body_bytes: int = 64 * 1024 * 1024
    #: Client WebSocket messages above this close the socket (1009).
    max_message_bytes: int = 1024 * 1024
    #: Messages waiting for a slow socket above this close it (1008): memory stays bounded.
    send_queue_limit: int = 20_000
    #: A close the client does not take up within this (it stopped reading) aborts the TCP
    #: connection instead, so a stuck client never keeps its socket open.
    close_timeout_seconds: float = 2.0
    #: Execution services a job may name; anything else is 422 (§B3.3.1).
    execution_services: tuple[str, ...] = ("DEFAULT", "PRIMARY", "SECONDARY")
    #: Keep at most this many record entries (oldest dropped); None keeps all.
    record_limit: int | None = 200_000
    #: Record the text of every WebSocket message sent (off for capacity runs).
    record_messages: bool = True
    #: Largest page size GET /api/compute-jobs answers with (the server may override, §B1.3).
    max_page_size: int = 100
    #: Without xpress, run a model payload as a canned solve labelled SIMULATED in its run log
    #: and results, instead of refusing the submission (422 naming the ``solver`` extra).
    simulate_solves: bool = False
    #: A job whose APP_MESSAGE gets no APP_MESSAGE_RESPONSE within this is FAILED (§B4.7.3).
    app_message_timeout_seconds: float = 60.0
    #: Re-send a still-unanswered APP_MESSAGE when a socket SUBSCRIBEs to its job (§B4.6); off,
    #: the message is not sent again and the job fails when its answer limit runs out.
    resend_app_messages_on_subscribe: bool = True
    #: Finished jobs are forgotten this long after they end (their GET then answers 404), so a
    #: long-running emulator does not grow without bound; None keeps them until DELETE.
    forget_finished_jobs_after_seconds: float | None = 3600.0
