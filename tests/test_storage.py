"""Object-storage URLs through Airflow's ObjectStoragePath (``file://`` here: no cloud needed)."""

from __future__ import annotations

import asyncio
import io
import zipfile
from pathlib import Path

import pytest

from airflow_insight.exceptions import ConfigurationError
from airflow_insight.storage import (
    aread_payload_bytes,
    awrite_bytes,
    is_object_storage_url,
    payload_from,
    read_payload_bytes,
    write_bytes,
)


def _names(data: bytes) -> list[str]:
    return sorted(zipfile.ZipFile(io.BytesIO(data)).namelist())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("s3://aws_default@bucket/model.zip", True),
        ("gs://bucket/dir/", True),
        ("file:///shared/model.lp", True),
        ("/data/model.lp", False),
        ("relative/model.lp", False),
        ("C:\\models\\model.lp", False),
        ("", False),
        (None, False),
    ],
)
def test_an_object_storage_url_is_told_from_a_local_path(value: object, expected: bool) -> None:
    assert is_object_storage_url(value) is expected


def test_a_model_file_a_zip_and_a_directory_are_read_from_a_url(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "problem.lp").write_text("max: x;\nx <= 1;\n")
    (tmp_path / "model" / "data" / "a.csv").parent.mkdir()
    (tmp_path / "model" / "data" / "a.csv").write_text("1\n")
    url = (tmp_path / "model" / "problem.lp").as_uri()
    assert _names(read_payload_bytes(url)) == ["problem.lp"]
    assert _names(read_payload_bytes((tmp_path / "model").as_uri())) == ["data/a.csv", "problem.lp"]
    zipped = tmp_path / "payload.zip"
    zipped.write_bytes(read_payload_bytes(url))
    assert read_payload_bytes(zipped.as_uri()) == zipped.read_bytes()
    assert payload_from(url) == read_payload_bytes(url)
    assert _names(payload_from(str(tmp_path / "model" / "problem.lp")) or b"") == ["problem.lp"]
    assert asyncio.run(aread_payload_bytes(zipped.as_uri())) == zipped.read_bytes()


def test_a_missing_or_unusable_url_is_a_configuration_error_naming_it(tmp_path: Path) -> None:
    missing = (tmp_path / "nope.zip").as_uri()
    with pytest.raises(ConfigurationError, match="does not exist in object storage") as info:
        read_payload_bytes(missing)
    assert missing in str(info.value)
    with pytest.raises(ConfigurationError, match="not a usable object-storage URL"):
        read_payload_bytes("nosuchscheme://bucket/model.zip")
    source = tmp_path / "model.mos"
    source.write_text("model m\nend-model\n")
    with pytest.raises(ConfigurationError, match="Mosel source"):
        read_payload_bytes(source.as_uri())


def test_bytes_are_written_to_a_url_with_its_directories(tmp_path: Path) -> None:
    url = (tmp_path / "a" / "b" / "results.zip").as_uri()
    assert write_bytes(url, b"zip bytes") == url
    assert (tmp_path / "a" / "b" / "results.zip").read_bytes() == b"zip bytes"
    other = (tmp_path / "c" / "plot.png").as_uri()
    assert asyncio.run(awrite_bytes(other, b"png")) == other
    assert (tmp_path / "c" / "plot.png").read_bytes() == b"png"


def test_a_write_that_fails_is_an_os_error_naming_the_url(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    url = (blocker / "results.zip").as_uri()
    with pytest.raises(OSError, match="could not write") as info:
        write_bytes(url, b"x")
    assert url in str(info.value)
