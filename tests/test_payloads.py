"""payload_bytes: what a DAG author's payload path becomes, and a clear error for each mistake.

Real files, directories, a FIFO and real permissions. The permission cases need a user that
permissions apply to: as root (CI, this machine) the check runs in a child process that drops to
``nobody`` after importing, under a world-traversable temporary directory.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_insight.exceptions import ConfigurationError
from airflow_insight.payloads import MODEL_SUFFIXES, payload_bytes

REPO = Path(__file__).resolve().parents[1]
PRODUCTION_PLAN = REPO / "example_dags" / "models" / "production_plan" / "problem.lp"
LP_TEXT = b"\\ a tiny LP\nmaximize\n obj: x\nsubject to\n c1: x <= 4\nend\n"
NOBODY = 65534


def members(payload: bytes | None) -> dict[str, bytes]:
    assert payload is not None
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def refused(path: str | Path) -> str:
    with pytest.raises(ConfigurationError) as caught:
        payload_bytes(path)
    assert caught.value.permanent
    return str(caught.value)


# ------------------------------------------------------------------------------- accepted


@pytest.mark.parametrize("path", [None, ""])
def test_no_path_means_no_payload(path: str | None) -> None:
    assert payload_bytes(path) is None


def test_a_zip_file_is_sent_as_it_is_whatever_its_name(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("problem.lp", LP_TEXT)
    for name in ("payload.zip", "payload.bin"):
        (tmp_path / name).write_bytes(buffer.getvalue())
        assert payload_bytes(tmp_path / name) == buffer.getvalue()


def test_a_directory_is_zipped_with_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "problem.lp").write_bytes(LP_TEXT)
    (tmp_path / "data" / "demand.csv").write_bytes(b"d,1\n")
    assert members(payload_bytes(str(tmp_path))) == {
        "data/demand.csv": b"d,1\n",
        "problem.lp": LP_TEXT,
    }


@pytest.mark.parametrize("name", ["problem.lp", "model.mps", "MODEL.MPS", "saved.svf"])
def test_a_single_model_file_is_zipped_under_its_own_name(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(LP_TEXT)
    assert members(payload_bytes(tmp_path / name)) == {name: LP_TEXT}


def test_a_gzipped_model_is_zipped_as_it_is(tmp_path: Path) -> None:
    (tmp_path / "problem.lp.gz").write_bytes(gzip.compress(LP_TEXT))
    zipped = members(payload_bytes(tmp_path / "problem.lp.gz"))
    assert gzip.decompress(zipped["problem.lp.gz"]) == LP_TEXT


def test_a_compiled_mosel_model_goes_in_as_main_bim(tmp_path: Path) -> None:
    (tmp_path / "scheduling.bim").write_bytes(b"\x00compiled")
    assert members(payload_bytes(tmp_path / "scheduling.bim")) == {"main.bim": b"\x00compiled"}


def test_the_zipped_model_file_is_solved_by_the_emulator() -> None:
    pytest.importorskip("xpress", reason="the optional 'xpress' package is not installed")
    from airflow_insight.emulator.solver import solve_payload

    payload = payload_bytes(PRODUCTION_PLAN)
    assert payload is not None
    result = solve_payload(payload, None, lambda line: None)
    assert (result.model_status, result.solution_status) == ("OK", "Optimal")
    assert result.problem_name == "problem"


# ------------------------------------------------------------------------------- refused


def test_a_missing_path_says_it_does_not_exist(tmp_path: Path) -> None:
    message = refused(tmp_path / "nowhere.zip")
    assert message == f"payload {str(tmp_path / 'nowhere.zip')!r} does not exist"


def test_a_missing_relative_path_names_the_directory_it_was_read_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    message = refused("models/problem.lp")
    assert "'models/problem.lp' does not exist" in message
    assert f"working directory, {tmp_path}" in message


def test_a_path_through_a_file_does_not_exist(tmp_path: Path) -> None:
    (tmp_path / "problem.lp").write_bytes(LP_TEXT)
    assert "does not exist" in refused(tmp_path / "problem.lp" / "x")


def test_a_file_that_is_neither_zip_nor_model_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("remember the milk\n")
    message = refused(tmp_path / "notes.txt")
    assert "is neither a zip file nor a model file" in message
    assert all(suffix in message for suffix in MODEL_SUFFIXES)


def test_a_broken_zip_says_so(tmp_path: Path) -> None:
    (tmp_path / "payload.zip").write_bytes(b"PK\x03\x04 cut short")
    assert "is named .zip but is not a valid zip file" in refused(tmp_path / "payload.zip")


def test_mosel_source_is_refused_with_how_to_compile_it(tmp_path: Path) -> None:
    (tmp_path / "scheduling.mos").write_text("model scheduling\nend-model\n")
    message = refused(tmp_path / "scheduling.mos")
    assert "is Mosel source" in message and "mosel comp scheduling.mos" in message


def test_an_empty_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    assert "holds no files" in refused(tmp_path / "empty")


def test_a_pipe_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    assert "is neither a file nor a directory" in refused(tmp_path / "fifo")


# ------------------------------------------------------------------------ permissions


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A temporary directory every user may enter (pytest's tmp_path is private to root)."""
    directory = Path(tempfile.mkdtemp(prefix="payloads-"))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        for path in (directory, *directory.rglob("*")):
            if not path.is_symlink():
                path.chmod(0o755 if path.is_dir() else 0o644)
        shutil.rmtree(directory)


def payload_error_for_an_unprivileged_user(path: Path) -> str | None:
    """The ConfigurationError message for ``path`` read by a user without root's powers.

    None when the payload was read. As root, a child imports the module, then drops to nobody.
    """
    if os.geteuid() != 0:
        try:
            payload_bytes(path)
        except ConfigurationError as exc:
            return str(exc)
        return None
    code = (
        "import os, sys\n"
        "from airflow_insight.exceptions import ConfigurationError\n"
        "from airflow_insight.payloads import payload_bytes\n"
        f"os.setgroups([]); os.setgid({NOBODY}); os.setuid({NOBODY})\n"
        "try:\n"
        "    payload_bytes(sys.argv[1])\n"
        "except ConfigurationError as exc:\n"
        "    print(exc); sys.exit(3)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode in (0, 3), done.stderr
    return done.stdout.strip() if done.returncode == 3 else None


def test_an_unreadable_file_says_permission_denied(shared_dir: Path) -> None:
    model = shared_dir / "problem.lp"
    model.write_bytes(LP_TEXT)
    model.chmod(0o644)
    assert payload_error_for_an_unprivileged_user(model) is None  # the check itself can read
    model.chmod(0o000)
    message = payload_error_for_an_unprivileged_user(model)
    assert message is not None
    assert f"payload {str(model)!r} cannot be read: Permission denied" in message
    assert "readable by the user the Airflow worker runs as" in message


def test_a_directory_that_cannot_be_entered_says_permission_denied(shared_dir: Path) -> None:
    private = shared_dir / "private"
    private.mkdir()
    (private / "problem.lp").write_bytes(LP_TEXT)
    private.chmod(0o700)
    message = payload_error_for_an_unprivileged_user(private / "problem.lp")
    assert message is not None and "cannot be read: Permission denied" in message


def test_an_unlistable_subdirectory_is_not_skipped_silently(shared_dir: Path) -> None:
    (shared_dir / "model").mkdir()
    (shared_dir / "model" / "problem.lp").write_bytes(LP_TEXT)
    (shared_dir / "model" / "data").mkdir()
    (shared_dir / "model" / "data" / "demand.csv").write_bytes(b"d,1\n")
    for path in (shared_dir / "model", shared_dir / "model" / "data"):
        path.chmod(0o755)
    assert payload_error_for_an_unprivileged_user(shared_dir / "model") is None
    (shared_dir / "model" / "data").chmod(0o000)
    message = payload_error_for_an_unprivileged_user(shared_dir / "model")
    assert message is not None
    assert f"{str(shared_dir / 'model' / 'data')!r} cannot be read: Permission denied" in message
