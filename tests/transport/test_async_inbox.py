"""The asyncio driver's inbox: urgent items first, frames bounded by the core's room."""

from __future__ import annotations

import asyncio

from airflow_insight.transport.async_inbox import AsyncInbox


def test_urgent_items_are_taken_ahead_of_waiting_frames() -> None:
    async def main() -> list[str | None]:
        inbox: AsyncInbox[str] = AsyncInbox(100)
        inbox.put_frame("frame 1", 10)
        inbox.put_frame("closed", 0)
        inbox.put_urgent("answer")
        return [await inbox.get(0.01) for _ in range(4)]

    assert asyncio.run(main()) == ["answer", "frame 1", "closed", None]


def test_a_reader_waits_for_room_until_the_loop_takes_a_frame() -> None:
    async def main() -> tuple[bool, bool, int]:
        inbox: AsyncInbox[str] = AsyncInbox(100)
        inbox.put_frame("first", 80)
        waiting = asyncio.ensure_future(inbox.room_for(30, lambda: True))
        await asyncio.sleep(0.05)
        blocked = not waiting.done()
        await inbox.get(0.01)
        await asyncio.wait_for(waiting, 5.0)
        return blocked, inbox.room.fits(30), inbox.room.peak

    assert asyncio.run(main()) == (True, True, 80)


def test_a_frame_larger_than_the_limit_enters_an_empty_inbox() -> None:
    async def main() -> int:
        inbox: AsyncInbox[str] = AsyncInbox(100)
        await asyncio.wait_for(inbox.room_for(500, lambda: True), 5.0)
        inbox.put_frame("huge", 500)
        return inbox.room.held

    assert asyncio.run(main()) == 500


def test_a_reader_of_a_replaced_socket_stops_waiting() -> None:
    async def main() -> None:
        inbox: AsyncInbox[str] = AsyncInbox(100)
        inbox.put_frame("first", 100)
        await asyncio.wait_for(inbox.room_for(50, lambda: False), 5.0)

    asyncio.run(main())
