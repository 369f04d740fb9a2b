"""The transport announces every secret it holds, so the hook can have Airflow mask it."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from support import emulator_settings, issued_tokens

from airflow_insight.emulator import Emulator, EmulatorConfig
from airflow_insight.transport.probe import probe_server
from airflow_insight.transport.rest import InsightRestClient
from airflow_insight.transport.secrets import add_secret_listener, remove_secret_listener

SECRET = "announced-secret-value"


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    """A client secret of this module's own, to find it among what was announced."""
    return EmulatorConfig(credentials={"client": SECRET})


@pytest.fixture
def heard() -> Iterator[list[str]]:
    """The secrets announced while the test runs."""
    values: list[str] = []
    add_secret_listener(values.append)
    add_secret_listener(values.append)  # added twice, told once
    yield values
    remove_secret_listener(values.append)


def test_the_client_secret_and_every_minted_token_are_announced(
    emulator: Emulator, heard: list[str]
) -> None:
    with InsightRestClient(emulator_settings(emulator)) as rest:
        assert heard == [SECRET]
        first = rest.current_token().value
        second = rest.refresh_token().value
    assert heard == [SECRET, first, second]
    assert sorted(issued_tokens(emulator)) == sorted([first, second])


def test_the_probe_announces_its_token(emulator: Emulator, heard: list[str]) -> None:
    assert probe_server(emulator_settings(emulator)).ok
    assert heard == [SECRET, *issued_tokens(emulator)]


def test_a_failing_listener_is_reported_without_the_secret_and_the_mint_goes_on(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(secret: str) -> None:
        raise RuntimeError(f"cannot mask {secret}")

    add_secret_listener(broken)
    try:
        with (
            caplog.at_level(logging.WARNING),
            InsightRestClient(emulator_settings(emulator)) as rest,
        ):
            token = rest.current_token().value
    finally:
        remove_secret_listener(broken)
    assert token in issued_tokens(emulator)
    assert "Could not register a secret for masking (RuntimeError)" in caplog.text
    assert SECRET not in caplog.text and token not in caplog.text
