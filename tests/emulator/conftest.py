"""The emulator with tiny intervals and its test scripts, and a token for raw socket tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_insight.emulator import NAMED_SCRIPTS, Emulator, EmulatorConfig
from emulator.support import SLOW, make_config, mint


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """Tiny intervals and the fast script; ``start_emulator(**changes)`` replaces fields."""
    return make_config()


@pytest.fixture
def emulator(emulator_config: EmulatorConfig) -> Iterator[Emulator]:
    """The emulator on 127.0.0.1 port 0; ``slow-*`` and ``quick-*`` jobs run those scripts."""
    with Emulator(emulator_config) as running:
        running.add_script("slow-*", SLOW)
        running.add_script("quick-*", NAMED_SCRIPTS["quick"])
        yield running


@pytest.fixture
def token(emulator: Emulator) -> str:
    """A bearer token of ``emulator`` for the demo client."""
    return mint(emulator)
