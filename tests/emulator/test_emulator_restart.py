"""Restarting the emulator on its port, and dropping every socket at once (the soak's faults)."""

from __future__ import annotations

import requests

from airflow_insight.emulator import Emulator, JobScript
from emulator.support import auth, connect, job_request, mint, submit, wait_for_close

#: Long enough to be running across the restart, short enough to end soon after.
STEADY = JobScript(
    name="steady", queued_seconds=0.05, log_lines=20, lines_per_second=20.0, batch_size=1
)


def test_restart_keeps_port_jobs_and_tokens(emulator: Emulator) -> None:
    emulator.add_script("steady-*", STEADY)
    token = mint(emulator)
    ws = connect(emulator, token)
    assert submit(emulator, token, job_request("steady-1")).status_code == 201
    port = emulator.port

    emulator.restart(down_seconds=0.2)

    assert wait_for_close(ws) is None  # cut without a close frame, as a crash would
    assert emulator.port == port
    # The job kept running while the server was down, and the token still works.
    document = emulator.wait_for_status("steady-1", {"COMPLETED"}, timeout_seconds=10.0)
    assert document["id"] == "steady-1"
    response = requests.get(
        emulator.base_url + "/api/compute-jobs/steady-1", headers=auth(token), timeout=5
    )
    assert response.status_code == 200
    assert len(emulator.run_log("steady-1")) == 20
    assert emulator.record.of_kind("restart")


def test_drop_sockets_cuts_every_open_socket(emulator: Emulator) -> None:
    token = mint(emulator)
    sockets = [connect(emulator, token), connect(emulator, token)]

    assert emulator.drop_sockets() == 2

    assert [wait_for_close(ws) for ws in sockets] == [None, None]
    fresh = connect(emulator, token)  # the server itself still serves
    assert emulator.connection_ids()
    fresh.close()
