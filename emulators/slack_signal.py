"""A change signal for the emulator's state, so tests wait for conditions instead of sleeping."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class StateSignal:
    """Wakes every waiter whenever the emulated state changes."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._version = 0

    @property
    def version(self) -> int:
        """How many changes have been signalled so far."""
        return self._version

    def changed(self) -> None:
        """Record one change and wake everyone waiting for the state to move."""
        self._version += 1
        self._event.set()
        # A fresh event per change: waiters re-check their predicate after each one.
        self._event = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], bool], timeout_s: float, what: str = "") -> None:
        """Return once `predicate()` holds, re-checking after every change; TimeoutError otherwise."""
        try:
            async with asyncio.timeout(timeout_s):
                while not predicate():
                    await self._event.wait()
        except TimeoutError:
            label = what or getattr(predicate, "__name__", "condition")
            raise TimeoutError(f"{label} did not become true within {timeout_s} s") from None
