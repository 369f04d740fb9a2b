"""Fixtures: the emulator on 127.0.0.1 port 0 with tiny intervals, and a token."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from airflow_insight.emulator import NAMED_SCRIPTS, Emulator

from .support import SLOW, make_config, mint


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(make_config()) as running:
        running.add_script("slow-*", SLOW)
        running.add_script("quick-*", NAMED_SCRIPTS["quick"])
        yield running


@pytest.fixture
def start_emulator() -> Iterator[Callable[..., Emulator]]:
    started: list[Emulator] = []

    def start(**overrides: Any) -> Emulator:
        running = Emulator(make_config(**overrides)).start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def token(emulator: Emulator) -> str:
    return mint(emulator)
