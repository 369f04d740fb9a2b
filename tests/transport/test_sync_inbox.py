"""The blocking driver's inbox, the twin of the asyncio one: urgent items first, frames bounded."""

from __future__ import annotations

import threading

from airflow_insight.transport.driving import Closed, Fed, Frame
from airflow_insight.transport.sync_inbox import SyncInbox

SOCKET = object()


def test_urgent_items_are_taken_ahead_of_waiting_frames() -> None:
    inbox = SyncInbox(100)
    frame, closed, fed = Frame(SOCKET, "x" * 10), Closed(SOCKET), Fed([])
    inbox.put_frame(frame, 10)
    inbox.put_frame(closed)
    inbox.put_urgent(fed)
    assert [inbox.get(0.01) for _ in range(4)] == [fed, frame, closed, None]


def test_a_reader_waits_for_room_until_the_loop_takes_a_frame() -> None:
    inbox = SyncInbox(100)
    first, second = Frame(SOCKET, "a" * 80), Frame(SOCKET, "b" * 30)
    inbox.put_frame(first, 80)
    reader = threading.Thread(target=inbox.put_frame, args=(second, 30, lambda: True))
    reader.start()
    reader.join(0.2)
    blocked = reader.is_alive()  # no room: the reader waits, nothing is dropped
    assert inbox.get(0.01) == first
    reader.join(5.0)
    assert blocked and not reader.is_alive()
    assert inbox.get(0.01) == second and inbox.room.peak == 80


def test_a_frame_larger_than_the_limit_enters_an_empty_inbox_and_a_replaced_reader_stops() -> None:
    inbox = SyncInbox(100)
    inbox.put_frame(Frame(SOCKET, "huge"), 500)
    assert inbox.room.held == 500
    inbox.put_frame(Frame(SOCKET, "late"), 50, wanted=lambda: False)  # returns at once
    assert inbox.room.held == 550
