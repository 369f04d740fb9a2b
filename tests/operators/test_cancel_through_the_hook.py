"""The one cancel flow, driven by the hook on a worker and off an event loop (emulator)."""

from __future__ import annotations

import asyncio
import time

from airflow_insight.emulator import Emulator, JobScript
from airflow_insight.hooks.insight import InsightHook
from airflow_insight.protocol.cancel import CancelEnd
from airflow_insight.protocol.request import build_request

QUICK = JobScript(name="quick", queued_seconds=0.01, log_lines=1, lines_per_second=100.0)


def _finished_job(emulator: Emulator, hook: InsightHook, job_id: str) -> None:
    emulator.add_script(job_id, QUICK)
    hook.submit_job(build_request(None, job_id))
    deadline = time.monotonic() + 60  # generous: a loaded machine
    while hook.get_job(job_id).get("status") != "COMPLETED":
        assert time.monotonic() < deadline, "the quick job did not complete"
        time.sleep(0.05)


def test_a_running_job_is_cancelled_and_seen_to_end(emulator: Emulator) -> None:
    hook = InsightHook()
    hook.submit_job(build_request(None, "long-1"))
    result = hook.cancel_job_and_wait("long-1", wait_seconds=30)
    assert result.end is CancelEnd.ENDED and result.status == "CANCELLED", result
    assert hook.get_job("long-1")["status"] == "CANCELLED"


def test_a_finished_job_is_left_alone_by_either_driver(emulator: Emulator) -> None:
    """No DELETE reaches a job that already ended: it keeps its results on the server."""
    hook = InsightHook()
    _finished_job(emulator, hook, "done-1")
    assert hook.cancel_job_and_wait("done-1", wait_seconds=5).end is CancelEnd.ALREADY_ENDED
    settings = hook.get_settings()
    result = asyncio.run(hook.acancel_job_and_wait(settings, "done-1", 5, step_bound=30))
    assert result.end is CancelEnd.ALREADY_ENDED and result.status == "COMPLETED"
    assert hook.get_job("done-1")["status"] == "COMPLETED"  # still there: not deleted


def test_off_the_loop_a_running_job_is_cancelled_without_waiting(emulator: Emulator) -> None:
    hook = InsightHook()
    hook.submit_job(build_request(None, "long-2"))
    settings = hook.get_settings()
    result = asyncio.run(hook.acancel_job_and_wait(settings, "long-2", 0, step_bound=30))
    assert result.end is CancelEnd.ASKED and result.cancelled
    deadline = time.monotonic() + 60
    while hook.get_job("long-2")["status"] != "CANCELLED":
        assert time.monotonic() < deadline, "the DELETE did not cancel the job"
        time.sleep(0.05)


def test_a_job_the_server_does_not_have_is_gone(emulator: Emulator) -> None:
    assert InsightHook().cancel_job_and_wait("never-1", wait_seconds=5).end is CancelEnd.GONE


def test_the_hooks_async_calls_share_one_client_and_its_token(emulator: Emulator) -> None:
    """A triggerer's hook mints one token for its life, not one per REST call."""
    hook = InsightHook()
    hook.submit_job(build_request(None, "long-3"))
    settings = hook.get_settings()
    assert len(emulator.record.of_kind("token_minted")) == 1  # the submit's
    emulator.record.clear()

    async def calls() -> None:
        assert await hook.afind_job(settings, ["none-3", "long-3"]) is not None
        await hook.acancel_job_and_wait(settings, "long-3", 0, step_bound=30)
        await hook.acancel_job(settings, "long-3")

    asyncio.run(calls())
    assert len(emulator.record.of_kind("delete")) == 2  # the calls did reach the server
    assert emulator.record.of_kind("token_minted") == []  # the submit's token served them all
    hook.close()
