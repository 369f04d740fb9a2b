"""Both drivers, the same inputs, the same behaviour: forwarded lines and outcomes compared.

Each scenario runs once per driver on one emulator (a job id per driver, the scenario's faults
armed afresh before each run) and the two results are compared with *each other*, field by field,
as well as with the emulator's run log. A difference names the scenario, the field and both
values, so a failure reads in one line.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from support import unused_port

from airflow_insight.emulator import DEMO_CLIENT_ID, Emulator, EmulatorConfig
from airflow_insight.emulator import faults as f
from airflow_insight.exceptions import InsightError
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport.rest import InsightRestClient
from airflow_insight.transport.retry import RetryPolicy
from contract import adapter_async, adapter_sync
from contract.test_driver_contract import BASE_SCRIPT, FAST_FOLLOWER

DRIVERS: tuple[ModuleType, ModuleType] = (adapter_sync, adapter_async)
#: The contract suite's short job (30 lines in batches of 3) and fast follower timing.
SCRIPT = BASE_SCRIPT
FAST = FAST_FOLLOWER

#: name -> (faults armed before each run, emulator settings)
SCENARIOS: dict[str, tuple[tuple[f.Fault, ...], dict[str, Any]]] = {
    "clean": ((), {}),
    "no-runlog-completed": ((), {"send_runlog_completed": False}),
    "drop-after-5-messages": ((f.DropSocket(after_messages=5),), {}),
    "drop-at-completed": ((f.DropSocket(status="COMPLETED"),), {}),
    "refuse-handshake-401": ((f.RefuseHandshake(401),), {}),
    "socket-never-opens": ((f.RefuseHandshake(503, times=None),), {}),
    "http-403-on-submit": ((f.HttpError("POST", "/api/compute-jobs", 403),), {}),
    "http-409-on-submit": ((f.HttpError("POST", "/api/compute-jobs", 409),), {}),
}


def _result(
    driver: ModuleType, emulator: Emulator, name: str, faults: tuple[f.Fault, ...]
) -> dict[str, Any]:
    """What one driver did: the outcome's fields or the error's type, and the lines."""
    job_id = f"cross-{name}-{driver.NAME}"
    emulator.inject(*faults)
    settings = ConnectionSettings(
        emulator.base_url, DEMO_CLIENT_ID, emulator.config.credentials[DEMO_CLIENT_ID]
    )
    lines: list[str] = []
    policy = RetryPolicy(max_attempts=3, base_delay_seconds=0.01, max_delay_seconds=0.05)
    follow: Callable[..., Any] = driver.follow_job
    with InsightRestClient(settings, retry_policy=policy) as rest:
        try:
            outcome = follow(
                settings,
                rest,
                {"id": job_id, "computeJobType": "SOLVER", "runLogMessages": True},
                None,
                config=FAST,
                on_line=lines.append,
                timeout_seconds=30.0,
            )
        except InsightError as exc:
            return {"raised": type(exc).__name__, "lines": _named(lines, job_id)}
    fields = dataclasses.asdict(outcome)
    # Each job has its own id and scenario: compare what they say, not what they are called.
    for name_of_job in ("compute_job_id", "result_url", "run_log_url"):
        fields[name_of_job] = fields[name_of_job] is not None
    fields["run_log_tail"] = _named(list(fields["run_log_tail"]), job_id)
    # Which socket brought the last lines, and so whether the REST fetch was needed, depends on
    # timing (a drop can land before or after RUNLOG_COMPLETED); what was forwarded does not.
    fields.pop("run_log_complete")
    fields["lines_match_the_run_log"] = lines == emulator.run_log(job_id)
    return {"outcome": fields, "lines": _named(lines, job_id)}


def _named(lines: list[str], job_id: str) -> list[str]:
    return [line.replace(job_id, "<job>") for line in lines]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_both_drivers_forward_the_same_lines_and_end_the_same(name: str) -> None:
    faults, overrides = SCENARIOS[name]
    config = EmulatorConfig(ping_interval_seconds=0.05, pong_timeout_seconds=2.0, **overrides)
    with Emulator(config) as emulator:
        emulator.add_script("*", SCRIPT)
        sync, async_ = (_result(driver, emulator, name, faults) for driver in DRIVERS)
    differences = [
        f"{key}: sync {sync.get(key)!r} != async {async_.get(key)!r}"
        for key in sorted(set(sync) | set(async_))
        if sync.get(key) != async_.get(key)
    ]
    assert not differences, f"{name}: " + "; ".join(d[:300] for d in differences)
    if "outcome" in sync:
        assert sync["outcome"]["lines_match_the_run_log"], name
        assert len(sync["lines"]) == SCRIPT.log_lines


# ----------------------------------------------------------------------------- open() and wait()


def _open_and_wait(
    kind: str, settings: ConnectionSettings, rest: InsightRestClient, job_id: str | None
) -> str:
    """Open a driver (and wait for ``job_id`` if given); the name of what was raised."""
    from airflow_insight.transport.async_driver import AsyncJobFollower
    from airflow_insight.transport.sync_driver import SyncJobFollower

    try:
        if kind == "sync":
            with SyncJobFollower(settings, rest, on_event=lambda event: None) as sync_driver:
                sync_driver.open()
                if job_id is not None:
                    sync_driver.wait(job_id, timeout_seconds=0.5)
        else:

            async def main() -> None:
                async with AsyncJobFollower(
                    settings, rest, on_event=lambda event: None
                ) as async_driver:
                    await async_driver.open()
                    if job_id is not None:
                        await async_driver.wait(job_id, timeout_seconds=0.5)

            asyncio.run(main())
    except InsightError as exc:
        return type(exc).__name__
    return "nothing"


def _counting(send: Callable[..., Any], attempts: list[object]) -> Callable[..., Any]:
    """Wrap the REST client's one HTTP exchange to count them (the exchange stays real)."""

    def counted(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args[:2])
        return send(*args, **kwargs)

    return counted


@pytest.mark.parametrize("case", ["wrong-secret", "closed-port", "wait-not-followed"])
def test_open_and_wait_behave_the_same_in_both_drivers(
    case: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    results = {}
    with Emulator(EmulatorConfig()) as emulator:
        for kind in ("sync", "async"):
            secret = emulator.config.credentials[DEMO_CLIENT_ID]
            base_url = emulator.base_url
            if case == "wrong-secret":
                secret = "wrong-secret-123"
            elif case == "closed-port":
                base_url = f"http://127.0.0.1:{unused_port()}"
            settings = ConnectionSettings(
                base_url, DEMO_CLIENT_ID, secret, connect_timeout_seconds=1
            )
            policy = RetryPolicy(max_attempts=3, base_delay_seconds=0.01, max_delay_seconds=0.02)
            with InsightRestClient(settings, retry_policy=policy) as rest:
                attempts: list[object] = []
                rest._send = _counting(rest._send, attempts)  # type: ignore[method-assign]
                job = "never-submitted" if case == "wait-not-followed" else None
                caplog.clear()
                raised = _open_and_wait(kind, settings, rest, job)
            socket_warnings = [r for r in caplog.records if "progress socket" in r.getMessage()]
            results[kind] = (raised, len(attempts), len(socket_warnings))
    assert results["sync"] == results["async"], results
    raised, attempts, socket_warnings = results["sync"]
    expected = {
        # One token request, refused; no socket warning before the real error.
        "wrong-secret": ("AuthenticationError", 1, 0),
        # One round of token attempts (the policy's 3), not two rounds.
        "closed-port": ("TransportError", 3, 0),
        "wait-not-followed": ("LocalProtocolError", 2, 0),  # the mint and its expiry read
    }[case]
    assert (raised, attempts, socket_warnings) == expected, results
