"""The payload zip of a compute job, made from the path a DAG author gives; standard library only.

What a path may be (protocol §B3.3: the payload is one zip; a SOLVER job's holds the problem file,
LP, MPS or SVF; a MOSEL job's holds the compiled model as ``main.bim``):

* a zip file: sent as it is, whatever its name;
* a directory: zipped in memory, with paths relative to the directory;
* a single model file (``problem.lp``, ``model.mps``, ``.svf``, ``.lp.gz``/``.mps.gz``, or a
  compiled Mosel model ``.bim``): zipped in memory on its own. A ``.bim`` goes in as ``main.bim``
  whatever its name, because that is the name Insight runs; the other files keep their name (the
  solver names the problem after it).

Everything else is a :class:`ConfigurationError` with its own message, raised before anything is
sent: a path that does not exist, one that cannot be read, Mosel source (``.mos``: Insight runs
compiled models only), an empty directory, and a file that is neither a zip nor a model.
"""

from __future__ import annotations

import io
import logging
import os
import stat
import zipfile
from pathlib import Path

from airflow_insight.exceptions import ConfigurationError

log = logging.getLogger(__name__)

#: Single files zipped for you (lower case): what a SOLVER job reads (§B3.3), as the emulator does
#: too for LP and MPS, and a compiled Mosel model.
MODEL_SUFFIXES = (".lp", ".mps", ".svf", ".lp.gz", ".mps.gz", ".bim")
#: The member name Insight runs in a MOSEL job's payload (§B3.3).
MOSEL_MAIN = "main.bim"
_MOSEL_SOURCE_SUFFIX = ".mos"


def payload_bytes(path: str | os.PathLike[str] | None) -> bytes | None:
    """The payload zip for ``path``: a zip file's bytes, or a directory or model file zipped.

    None (or an empty path) means no payload. Raises :class:`ConfigurationError` naming the path
    and what is wrong with it; reads only local files.
    """
    if path is None or str(path) == "":
        return None
    source = Path(path)
    try:
        mode = source.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise ConfigurationError(_missing_message(source)) from None
    except OSError as exc:  # e.g. a parent directory the worker may not enter
        raise _unreadable(source, exc) from None
    if stat.S_ISDIR(mode):
        return _zip_directory(source)
    if stat.S_ISREG(mode):
        return _file_payload(source)
    raise ConfigurationError(
        f"payload {str(source)!r} is neither a file nor a directory (a pipe, socket or device)"
    )


def _file_payload(source: Path) -> bytes:
    _refuse_mosel_source(source.name, str(source))
    return file_payload(source.name, _read(source), str(source))


def _refuse_mosel_source(file_name: str, shown: str) -> None:
    if file_name.lower().endswith(_MOSEL_SOURCE_SUFFIX):
        raise ConfigurationError(
            f"payload {shown!r} is Mosel source: Insight runs compiled models only;"
            f" compile it (mosel comp {file_name}) and give the .bim file, or a directory"
            f" holding it as {MOSEL_MAIN}"
        )


def file_payload(file_name: str, data: bytes, shown: str) -> bytes:
    """The payload zip for one file's bytes (named ``file_name``; ``shown`` in messages): a
    zip as it is, a model file zipped; anything else a :class:`ConfigurationError`."""
    _refuse_mosel_source(file_name, shown)
    name = file_name.lower()
    if name.endswith(MODEL_SUFFIXES):
        member = MOSEL_MAIN if name.endswith(".bim") else file_name
        log.info("Zipping the model file %s into the payload as %s", shown, member)
        return zip_members([(member, data)])
    if zipfile.is_zipfile(io.BytesIO(data)):
        return data
    if name.endswith(".zip"):
        raise ConfigurationError(
            f"payload {shown!r} is named .zip but is not a valid zip file (truncated,"
            " or another format)"
        )
    raise ConfigurationError(
        f"payload {shown!r} is neither a zip file nor a model file"
        f" ({', '.join(MODEL_SUFFIXES)}): give a zip, a directory to zip, or one model file"
    )


def _zip_directory(source: Path) -> bytes:
    def refuse(exc: OSError) -> None:
        raise _unreadable(Path(exc.filename or source), exc)

    # os.walk with onerror, not Path.rglob: rglob skips a subdirectory it may not list without a
    # word, which would send an incomplete payload. Like rglob, it does not follow symlinked
    # directories.
    files = [
        Path(directory, name)
        for directory, _, names in os.walk(source, onerror=refuse)
        for name in names
    ]
    files = sorted(file for file in files if file.is_file())
    if not files:
        raise ConfigurationError(
            f"payload directory {str(source)!r} holds no files; put the model (and any data"
            " files it reads) in it"
        )
    return zip_members([(file.relative_to(source).as_posix(), _read(file)) for file in files])


def zip_members(members: list[tuple[str, bytes]]) -> bytes:
    """A zip (deflated, in memory) of ``(name, bytes)`` members."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


def _read(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except OSError as exc:
        raise _unreadable(file, exc) from None


def _unreadable(path: Path, exc: OSError) -> ConfigurationError:
    reason = exc.strerror or type(exc).__name__
    hint = (
        "; make it readable by the user the Airflow worker runs as"
        if isinstance(exc, PermissionError)
        else ""
    )
    return ConfigurationError(f"payload {str(path)!r} cannot be read: {reason}{hint}")


def _missing_message(source: Path) -> str:
    message = f"payload {str(source)!r} does not exist"
    if not source.is_absolute():
        # DAG authors often write a path relative to the DAG file; the worker reads it from its
        # own working directory.
        message += f" (a relative path is read from the worker's working directory, {os.getcwd()})"
    return message
