"""Object-storage URLs for payloads and the files a job's end writes.

A path argument (``payload``, ``results_path``, ``solution_path``, ``progress_plot_path``) is
either a plain local path, read or written on the disk of the process that runs the task, or an
Airflow object-storage URL (``s3://``, ``gs://``, ``file://`` on a shared disk, ...), reached
through Airflow's ``ObjectStoragePath`` (``s3://aws_default@bucket/key`` names the connection).
Only a URL can be reached from any process alike: the triggerer ends a task itself only when
every file its end writes is a URL (see ``docs/design.md``).

The calls here block (fsspec does the I/O); the ``a``-prefixed forms run them in a thread so a
trigger's event loop never waits on storage.
"""

from __future__ import annotations

import asyncio
import os
import re
from typing import Any

from airflow_insight.compat.sdk import object_storage_path
from airflow_insight.exceptions import ConfigurationError
from airflow_insight.payloads import file_payload, payload_bytes, zip_members

#: ``scheme://`` at the start, as in an URL (RFC 3986 scheme characters); a Windows drive
#: (``C:\``) has no ``//`` and stays a local path.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_object_storage_url(value: object) -> bool:
    """Whether ``value`` is an object-storage URL (``scheme://...``), not a local path."""
    return isinstance(value, str) and _URL.match(value) is not None


def payload_from(path: str | os.PathLike[str] | None) -> bytes | None:
    """The payload zip for a ``payload`` argument: an object-storage URL read with
    :func:`read_payload_bytes`, anything else a local path (:func:`payloads.payload_bytes`)."""
    if is_object_storage_url(path):
        return read_payload_bytes(str(path))
    return payload_bytes(path)


def read_payload_bytes(url: str) -> bytes:
    """The payload zip for the object at ``url``: a zip as it is, a model file zipped, or a
    "directory" (a prefix) with its files zipped, paths relative to it.

    Raises :class:`ConfigurationError` naming the URL when it cannot be read (missing, no
    filesystem for the scheme, no access).
    """
    path = _path(url)
    try:
        if path.is_dir():
            return _zip_prefix(url, path)
        data = bytes(path.read_bytes())
    except FileNotFoundError:
        raise ConfigurationError(f"payload {url!r} does not exist in object storage") from None
    except ConfigurationError:
        raise
    except Exception as exc:  # fsspec raises its backends' own errors: each says what failed
        raise ConfigurationError(f"payload {url!r} cannot be read: {_reason(exc)}") from None
    return file_payload(str(path.name), data, url)


def write_bytes(url: str, data: bytes) -> str:
    """Write ``data`` to the object at ``url`` (creating its "directory" where the store has
    such); the URL written. Errors are :class:`OSError` with the URL and what failed."""
    path = _path(url)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except Exception as exc:  # the backends' own errors, as one kind the callers can catch
        raise OSError(f"could not write {url}: {_reason(exc)}") from exc
    return url


async def aread_payload_bytes(url: str) -> bytes:
    """:func:`read_payload_bytes` in a thread (for an event loop)."""
    return await asyncio.to_thread(read_payload_bytes, url)


async def awrite_bytes(url: str, data: bytes) -> str:
    """:func:`write_bytes` in a thread (for an event loop)."""
    return await asyncio.to_thread(write_bytes, url, data)


def _path(url: str) -> Any:
    try:
        return object_storage_path(url)
    except Exception as exc:  # an unknown scheme, a malformed URL, a missing connection
        raise ConfigurationError(
            f"{url!r} is not a usable object-storage URL: {_reason(exc)}"
        ) from None


def _zip_prefix(url: str, root: Any) -> bytes:
    files = sorted((item for item in root.rglob("*") if item.is_file()), key=str)
    if not files:
        raise ConfigurationError(f"payload directory {url!r} holds no files; put the model in it")
    members = [(item.relative_to(root).as_posix(), bytes(item.read_bytes())) for item in files]
    return zip_members(members)


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
