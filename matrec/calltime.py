"""One Claude call's clock: when it was ready, when its first attempt got a slot, when it ended."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class CallTiming:
    """One call's timing: ready, first attempt, end; and its wait for the cache primer."""

    ready: float = field(default_factory=time.perf_counter)
    first_attempt: float | None = None
    gate_wait_s: float = 0.0

    def attempt(self) -> None:
        """An attempt got its slot (the first one ends the queueing)."""
        if self.first_attempt is None:
            self.first_attempt = time.perf_counter()

    def spans(self) -> tuple[float, float]:
        """(queued_s, elapsed_s): waiting before the first attempt, then the calls themselves."""
        now = time.perf_counter()
        start = self.first_attempt if self.first_attempt is not None else now
        return start - self.ready, now - start
