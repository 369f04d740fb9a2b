"""An in-memory watermark store and a clock the test moves: the store logic without Airflow."""

from __future__ import annotations

from airflow_insight.triggers.watermark_store import StoreUnavailable


class MemoryStore:
    """Texts by key in a dict; ``failing`` makes every call fail as an unanswered store would."""

    answer_seconds = 5.0

    def __init__(self) -> None:
        self.texts: dict[str, str] = {}
        self.failing = False
        #: Every call, as ``(method, key)`` (key "" for ``keys``).
        self.calls: list[tuple[str, str]] = []

    def _call(self, method: str, key: str = "") -> None:
        self.calls.append((method, key))
        if self.failing:
            raise StoreUnavailable(f"{method} {key}: the store is down")

    async def keys(self, timeout: float) -> list[str]:
        """Every key."""
        self._call("keys")
        return sorted(self.texts)

    async def get(self, key: str, timeout: float) -> str | None:
        """The text of ``key``."""
        self._call("get", key)
        return self.texts.get(key)

    async def put(self, key: str, text: str, timeout: float) -> None:
        """Store ``text`` as ``key``."""
        self._call("put", key)
        self.texts[key] = text

    async def delete(self, key: str, timeout: float) -> None:
        """Drop ``key``."""
        self._call("delete", key)
        self.texts.pop(key, None)


class DrivenClock:
    """Wall-clock seconds that move only when the test says so."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock on by ``seconds``."""
        self.now += seconds
