"""The stop-signal guard in front of Airflow's real ``TriggerRunner._handle_signal``.

Real signals to this process: the guard must run its stop work *before* Airflow's runner sees
``stop``, then hand every signal on, and leave Airflow's handlers in place afterwards.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator

import pytest
from airflow.jobs.triggerer_job_runner import TriggerRunner

from airflow_insight.triggers.shutdown import STOP_SIGNALS, ShutdownGuard


@pytest.fixture
def runner() -> Iterator[TriggerRunner]:
    """A real trigger runner whose handlers are installed as ``TriggerRunner.run`` does."""
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    trigger_runner = TriggerRunner()
    for signum in STOP_SIGNALS:
        signal.signal(signum, trigger_runner._handle_signal)
    try:
        yield trigger_runner
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@pytest.mark.parametrize("signum", STOP_SIGNALS)
def test_stop_work_runs_before_airflow_sees_the_signal(
    runner: TriggerRunner, signum: signal.Signals
) -> None:
    seen: list[bool] = []

    async def on_stop() -> None:
        seen.append(runner.stop)
        await asyncio.sleep(0.2)  # a supervisor round trip
        seen.append(runner.stop)

    async def main() -> None:
        guard = ShutdownGuard(on_stop, budget_seconds=5)
        assert guard.install()
        os.kill(os.getpid(), signum)
        os.kill(os.getpid(), signal.SIGINT)  # the supervisor's SIGINT arrives meanwhile
        for _ in range(100):
            await asyncio.sleep(0.02)
            if runner.stop:
                break
        assert guard.stopping

    asyncio.run(main())
    assert seen == [False, False], "Airflow's runner stopped before the stop work was done"
    assert runner.stop, "the signal was not handed on to Airflow's runner"
    for each in STOP_SIGNALS:
        assert signal.getsignal(each) == runner._handle_signal


def test_a_stop_work_over_budget_still_hands_the_signal_on(runner: TriggerRunner) -> None:
    async def on_stop() -> None:
        await asyncio.sleep(60)

    async def main() -> None:
        guard = ShutdownGuard(on_stop, budget_seconds=0.2)
        assert guard.install()
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(100):
            await asyncio.sleep(0.05)
            if runner.stop:
                return

    asyncio.run(main())
    assert runner.stop


def test_no_guard_outside_a_trigger_runner() -> None:
    before = signal.getsignal(signal.SIGTERM)

    async def on_stop() -> None:
        raise AssertionError("never called")

    async def main() -> bool:
        return ShutdownGuard(on_stop, budget_seconds=1).install()

    assert asyncio.run(main()) is False
    assert signal.getsignal(signal.SIGTERM) == before
