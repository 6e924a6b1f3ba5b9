"""Prompt-cache priming: one call goes first so the others can read the prefix it wrote."""

from __future__ import annotations

import asyncio
import time


class PrimeGate:
    """Holds the other calls back until the first one's response starts, so they read its cache."""

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._armed_at: float | None = None
        self.wait_s = 0.0

    def arm(self) -> None:
        """The primer's call is starting: the wait is timed from here."""
        self._armed_at = time.perf_counter()

    def open(self) -> None:
        """Release the others (the primer's answer started, or the primer ended without one)."""
        if not self._open.is_set():
            if self._armed_at is not None:
                self.wait_s = time.perf_counter() - self._armed_at
            self._open.set()

    async def wait(self) -> None:
        """Wait until the gate opens."""
        await self._open.wait()
