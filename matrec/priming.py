"""Prompt-cache priming: one call goes first so the others can read the prefix it wrote.

The others wait for the primer's first byte only up to a short bound (`MATREC_PRIME_WAIT_S`): a
primer that hangs, queues behind a rate limit or fails costs at most that bound, then they go
anyway (and write the prefix themselves).
"""

from __future__ import annotations

import asyncio
import time


class PrimeGate:
    """Holds the other calls back until the first one's response starts, or the bound passes."""

    def __init__(self, bound_s: float) -> None:
        self.bound_s = bound_s
        self._open = asyncio.Event()
        self._armed_at: float | None = None
        self.wait_s = 0.0  # the primer's time to first byte (or until it ended without one)

    def arm(self) -> None:
        """The primer's call is starting: the wait is timed from here."""
        if self._armed_at is None:
            self._armed_at = time.perf_counter()

    def open(self) -> None:
        """Release the others (the primer's answer started, or the primer ended without one)."""
        if not self._open.is_set():
            if self._armed_at is not None:
                self.wait_s = time.perf_counter() - self._armed_at
            self._open.set()

    async def wait(self) -> float:
        """Wait until the gate opens or the bound passes; returns the seconds waited."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.bound_s):
                await self._open.wait()
        except TimeoutError:
            pass  # the primer is slow: go without its cache entry
        return time.perf_counter() - started
