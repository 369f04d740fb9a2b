"""Minted tokens are registered with Airflow's secrets masker, whichever logger prints them.

A task under ``dag.test()`` logs every token the emulator issued through ``urllib3``'s logger once
its job has ended. ``dag.test()`` renders its console without the masking step a supervisor
applies to real task and trigger logs (Airflow's ``mask_logs``), so the test renders each caught
record through the same masker (``redact``): the token must come out as ``***``. In deferrable
mode the trigger minted its own token, which the masker must know too.
"""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.sdk import redact
from dag_support import load_dags

from airflow_insight.emulator import Emulator

DAGS = load_dags("insight_secret_dags")


@pytest.mark.parametrize("dag_id", ["ts_blocking", "ts_deferrable"])
def test_a_token_printed_by_a_third_party_logger_is_redacted(
    emulator: Emulator, dag_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    issued = emulator.hub.tokens._tokens  # test-only peek at the issued tokens
    before = set(issued)
    DAGS.ISSUED = lambda: [token for token in list(issued) if token not in before]
    with caplog.at_level("WARNING", logger="urllib3"):
        run = getattr(DAGS, dag_id).test()
    assert run.state == "success", caplog.text[-3000:]
    minted = [token for token in list(issued) if token not in before]
    # The worker's token for the submission; in deferrable mode also the trigger's own.
    assert len(minted) >= (2 if dag_id == "ts_deferrable" else 1)
    leaked = [r.getMessage() for r in caplog.records if r.name == "urllib3"]
    assert len(leaked) == len(minted) and all(DAGS.LEAK in line for line in leaked)
    for line in leaked:
        assert redact(line) == f"{DAGS.LEAK}***", line
