"""Waiting until the triggerer has read a trigger's log records (real sockets, real Airflow
logging setup in a child process; the whole trigger in a real triggerer is case 1b of
``tests/distributed``)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator

import pytest
import structlog

from airflow_insight.triggers.log_delivery import (
    DeliveryWatch,
    log_stream_fd,
    unread_bytes,
    wait_until_read,
)

RECORD = b'{"event": "job: run-log line 1", "level": "info"}\n'


@pytest.fixture
def channel() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected pair: the trigger runner's end and the supervisor's end."""
    writer, reader = socket.socketpair()
    with writer, reader:
        yield writer, reader


def test_the_watch_counts_drops_as_reads_while_others_write() -> None:
    watch = DeliveryWatch.starting_at(1000)
    assert not watch.observe(1200)  # others wrote 200 more; nothing provably read
    assert not watch.observe(700)  # at least 500 read
    assert not watch.observe(900)
    assert watch.observe(400)  # at least 1000 read: everything queued at the start
    assert DeliveryWatch.starting_at(0).observe(0)


def test_unread_bytes_follow_the_reader(channel: tuple[socket.socket, socket.socket]) -> None:
    writer, reader = channel
    assert unread_bytes(writer.fileno()) == 0
    writer.sendall(RECORD * 10)
    queued = unread_bytes(writer.fileno())
    assert queued is not None and queued >= len(RECORD) * 10
    received = 0
    while received < len(RECORD) * 10:
        received += len(reader.recv(65536))
    assert unread_bytes(writer.fileno()) == 0


def test_the_wait_ends_only_after_the_reader_read_every_earlier_record(
    channel: tuple[socket.socket, socket.socket],
) -> None:
    """A slow reader (1 KiB every 10 ms) and another writer that keeps writing after the mark:
    the wait ends once the marked record was read, though the queue never empties."""
    writer, reader = channel
    marker = b'{"event": "the last line of this trigger"}\n'
    for _ in range(200):  # one write per record, as the logging stream does
        writer.sendall(RECORD)
    writer.sendall(marker)
    got = bytearray()
    lock = threading.Lock()  # held around each recv: when the wait ends, the append is done
    stop = threading.Event()

    def read_slowly() -> None:
        while not stop.is_set():
            with lock:
                got.extend(reader.recv(1024))
            time.sleep(0.01)

    def others_write() -> None:
        while not stop.is_set():
            writer.sendall(RECORD)
            time.sleep(0.005)

    threads = [threading.Thread(target=read_slowly), threading.Thread(target=others_write)]
    for thread in threads:
        thread.start()
    try:
        delivered = asyncio.run(wait_until_read(writer.fileno(), limit=60))
        with lock:
            assert delivered is True
            assert marker in got, f"the wait ended with {len(got)} bytes read"
    finally:
        stop.set()
        writer.shutdown(socket.SHUT_WR)  # the reader's last recv returns
        for thread in threads:
            thread.join()


def test_the_wait_gives_up_at_its_limit(channel: tuple[socket.socket, socket.socket]) -> None:
    writer, _ = channel
    writer.sendall(RECORD)
    assert asyncio.run(wait_until_read(writer.fileno(), limit=0.2)) is False


def test_nothing_to_wait_for_without_a_socket() -> None:
    assert asyncio.run(wait_until_read(None)) is None
    with open(__file__, "rb") as not_a_socket:
        assert asyncio.run(wait_until_read(not_a_socket.fileno())) is None


def test_only_a_local_stream_socket_is_watched() -> None:
    """structlog writing to a file or to a TCP socket: no stream to watch (on TCP the queue
    counts bytes the peer's kernel has not acknowledged, not bytes its reader has read)."""
    saved = structlog.get_config()
    listener = socket.create_server(("127.0.0.1", 0))
    ours, theirs = socket.socketpair()
    try:
        with (
            socket.create_connection(listener.getsockname()) as tcp,
            open(__file__, "rb") as not_a_socket,
        ):
            for stream, expected in ((tcp, None), (not_a_socket, None), (ours, ours.fileno())):
                factory = structlog.BytesLoggerFactory(stream)  # type: ignore[arg-type]
                structlog.configure(logger_factory=factory)
                assert log_stream_fd() == expected, stream
    finally:
        for end in (listener, ours, theirs):
            end.close()
        structlog.configure(**saved)


def test_the_stream_is_found_in_the_trigger_runners_logging_setup() -> None:
    """Airflow's own setup of a trigger runner's log channel (the function the supervisor's
    child calls), in a child process: ``log_stream_fd`` finds that socket. Fails if an Airflow
    upgrade moves the stream, so the wait would silently stop working."""
    script = textwrap.dedent(
        """
        import socket
        from airflow.sdk.execution_time.supervisor import _configure_logs_over_json_channel
        from airflow_insight.triggers.log_delivery import log_stream_fd, unread_bytes
        ours, theirs = socket.socketpair()
        _configure_logs_over_json_channel(ours.fileno())
        import structlog
        structlog.get_logger("insight.run_log").info("a run-log line")
        found = log_stream_fd()
        print(found == ours.fileno(), (unread_bytes(found) or 0) > 0 if found else None)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["True", "True"], result.stdout + result.stderr[-2000:]
