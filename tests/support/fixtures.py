"""The shared fixtures: an emulator on 127.0.0.1 port 0, settings for it, a REST client.

Registered for every test folder by the root ``tests/conftest.py``. Each fixture builds on the
one before (``emulator_config`` → ``emulator`` → ``settings`` → ``rest``), so a folder or module
overrides only the step it needs: ``emulator_config`` for other intervals or credentials,
``emulator`` to add job scripts or point an ``AIRFLOW_CONN_*`` variable at it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_insight.emulator import Emulator, EmulatorConfig
from airflow_insight.settings import ConnectionSettings
from airflow_insight.transport.rest import InsightRestClient
from support import FAST_RETRY, QUICK_KEEPALIVE, StartEmulator, emulator_settings


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """Tiny keep-alive intervals; override the fixture or replace fields to change them."""
    return QUICK_KEEPALIVE


@pytest.fixture
def start_emulator(emulator_config: EmulatorConfig) -> Iterator[StartEmulator]:
    """Start emulators (``emulator_config`` with fields replaced); all are stopped at the end."""
    started: list[Emulator] = []

    def start(**changes: Any) -> Emulator:
        running = Emulator(dataclasses.replace(emulator_config, **changes)).start()
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def emulator(emulator_config: EmulatorConfig) -> Iterator[Emulator]:
    """The emulator on 127.0.0.1, any free port."""
    with Emulator(emulator_config) as running:
        yield running


@pytest.fixture
def settings(emulator: Emulator) -> ConnectionSettings:
    """Connection settings for ``emulator`` with its first credentials."""
    return emulator_settings(emulator)


@pytest.fixture
def rest(settings: ConnectionSettings) -> Iterator[InsightRestClient]:
    """A REST client for ``settings`` with a fast retry policy; the fixture closes it."""
    with InsightRestClient(settings, retry_policy=FAST_RETRY) as client:
        yield client
