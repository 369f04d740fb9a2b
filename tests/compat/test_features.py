"""The exact set of Airflow features that is on, per Airflow line, and the one log line.

Run by every leg of the CI matrix against the Airflow it installs: a release that removes or
renames what a feature check looks for fails here instead of silently turning a guard off.
"""

from __future__ import annotations

import logging

import pytest
from packaging.version import Version

from airflow_insight.compat import features
from airflow_insight.compat.sdk import airflow_version

ALL = frozenset(
    {
        "re-attach through task_state_store",
        "trigger on_kill",
        "watermark resume",
        "clean-stop guard",
        "log-delivery wait",
        "concurrent supervisor requests",
        "declarative connection form",
        "start in triggerer",
        "end in triggerer",
    }
)
#: What each supported Airflow line has (the newest patch of each; see docs/airflow-versions.md).
EXPECTED_ON: dict[tuple[int, int], frozenset[str]] = {
    (3, 0): frozenset({"log-delivery wait", "end in triggerer"}),
    (3, 1): frozenset({"log-delivery wait", "clean-stop guard", "end in triggerer"}),
    (3, 2): frozenset(
        {
            "log-delivery wait",
            "clean-stop guard",
            "concurrent supervisor requests",
            "declarative connection form",
            "end in triggerer",
        }
    ),
    (3, 3): ALL,
    (3, 4): ALL,
}


def _line() -> tuple[int, int]:
    version = Version(airflow_version())
    return version.major, version.minor


def test_every_feature_is_named_once() -> None:
    names = [feature.name for feature in features.all_features()]
    assert sorted(names) == sorted(ALL)


def test_the_features_on_are_exactly_those_of_this_airflow_line() -> None:
    line = _line()
    if line not in EXPECTED_ON:
        pytest.fail(f"Airflow {airflow_version()} is not a supported line: add it to EXPECTED_ON")
    assert features.enabled() == EXPECTED_ON[line], features.summary()


def test_a_feature_that_is_off_says_what_is_missing_and_what_happens_instead() -> None:
    for feature in features.all_features():
        text = feature.describe()
        if feature.on:
            assert text == f"{feature.name}: on"
        else:
            assert f"Airflow {airflow_version()} has no " in text
            assert feature.fallback in text


def test_the_summary_is_logged_once_per_process_kind(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=features.LOGGER_NAME)
    features.log_once("test process")
    features.log_once("test process")
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 1
    assert lines[0].startswith(f"test process: airflow-insight on Airflow {airflow_version()}: ")
    for feature in features.all_features():
        assert feature.describe() in lines[0]
