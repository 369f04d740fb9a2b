"""The watermark store on Airflow Variables: one Variable per triggerer event loop.

Airflow rebuilds a moved or restarted trigger from the kwargs it deferred with and gives it no
way to update them; what a trigger *can* write through its supervisor is Variables and XComs.
Decision: each triggerer's event loop keeps one :class:`~.watermark_store.WatermarkWriter`
whose table is one Variable (:data:`VARIABLE_PREFIX` + a writer id unique to the process),
written through the triggerer's supervisor (``compat.supervisor``): one batched Variable costs
about 1 % of a core at 1,000 jobs where per-task XComs would cost a whole one
(``benchmarks/watermark_persist.py``). The writer stores its table on the trigger runner's stop
signal (:mod:`.shutdown`), since ``cleanup()`` comes too late to write. The store's logic is in
:mod:`.watermark_store`; see ``docs/design.md#the-watermark-store``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
import weakref

from airflow_insight.compat import supervisor
from airflow_insight.compat.supervisor import SupervisorUnavailable
from airflow_insight.triggers.shutdown import ShutdownGuard
from airflow_insight.triggers.watermark_store import (
    STOP_WRITE_BUDGET_SECONDS,
    StoreUnavailable,
    WatermarkReader,
    WatermarkWriter,
)

#: Variable keys of watermark tables (no "token"/"secret" in it: Airflow masks such names).
VARIABLE_PREFIX = "insight_run_log_watermarks."
_DESCRIPTION = (
    "airflow-insight: how far deferred Insight jobs' run logs were forwarded (kept by a"
    " triggerer; deleted when its jobs end)"
)


class VariablesStore:
    """Watermark tables as Airflow Variables, asked of the triggerer's supervisor."""

    @property
    def answer_seconds(self) -> float:
        """The supervisor's answer limit."""
        return supervisor.ASK_TIMEOUT_SECONDS

    async def keys(self, timeout: float) -> list[str]:
        """Every watermark Variable's key (``GetVariableKeys``)."""
        try:
            return await supervisor.variable_keys(VARIABLE_PREFIX, timeout)
        except SupervisorUnavailable as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def get(self, key: str, timeout: float) -> str | None:
        """The text of Variable ``key``."""
        try:
            return await supervisor.get_variable(key, timeout)
        except SupervisorUnavailable as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def put(self, key: str, text: str, timeout: float) -> None:
        """Create or replace Variable ``key``."""
        try:
            await supervisor.put_variable(key, text, _DESCRIPTION, timeout)
        except SupervisorUnavailable as exc:
            raise StoreUnavailable(f"Variable {key}: {exc}") from exc

    async def delete(self, key: str, timeout: float) -> None:
        """Delete Variable ``key``."""
        try:
            await supervisor.delete_variable(key, timeout)
        except SupervisorUnavailable as exc:
            raise StoreUnavailable(f"Variable {key}: {exc}") from exc


def variables_writer(writer_id: str | None = None) -> WatermarkWriter:
    """A writer into Variable :data:`VARIABLE_PREFIX` + ``writer_id`` (default: unique here)."""
    writer_id = writer_id or f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    writer = WatermarkWriter(VariablesStore(), time.time, f"{VARIABLE_PREFIX}{writer_id}")
    writer.stop_signal = ShutdownGuard(writer.store_final, STOP_WRITE_BUDGET_SECONDS)
    return writer


def variables_reader() -> WatermarkReader:
    """A reader of every writer's Variable (one that writes none of its own)."""
    return WatermarkReader(VariablesStore(), time.time)


_WRITERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, WatermarkWriter] = (
    weakref.WeakKeyDictionary()
)


def writer_for_running_loop() -> WatermarkWriter:
    """The writer of the running loop (the triggerer runs every trigger on one loop)."""
    loop = asyncio.get_running_loop()
    writer = _WRITERS.get(loop)
    if writer is None:
        writer = _WRITERS[loop] = variables_writer()
    return writer
