"""Readiness (`/readyz`): whether this instance should get traffic now, as opposed to being alive.

A load balancer or orchestrator takes an instance that is not ready out of rotation instead of
restarting it. Not ready: while it starts, while it drains at shutdown, and whenever the database
does not answer a trivial query within `READY_PING_TIMEOUT_S` (so a database blip takes every
instance out of rotation for its length, and `/healthz` stays green so none is restarted).
"""

from __future__ import annotations

import asyncio
import logging
from enum import StrEnum
from typing import Any, Final, Protocol

from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)

READY_PING_TIMEOUT_S: Final = 2.0
DATABASE_UNREACHABLE: Final = "database unreachable"


class Phase(StrEnum):
    """Where the process is in its life."""

    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"


class Pingable(Protocol):
    """`bot.store.Store`: something that answers a trivial query or raises."""

    async def ping(self) -> None:
        """Raise when the database cannot answer."""
        ...


class Readiness:
    """The phase, set by the service as it starts and stops, and the database check."""

    def __init__(self, store: Pingable, *, timeout_s: float = READY_PING_TIMEOUT_S) -> None:
        self.store = store
        self.timeout_s = timeout_s
        self.phase = Phase.STARTING

    def ready(self) -> None:
        """Started: traffic is welcome once the database answers."""
        self.phase = Phase.READY

    async def drain(self) -> None:
        """Shutting down: no new traffic (an async callback for the service's exit stack)."""
        self.phase = Phase.DRAINING

    async def check(self) -> tuple[bool, dict[str, Any]]:
        """Whether to send traffic here, and if not, the reason."""
        if self.phase is not Phase.READY:
            return False, {"reason": str(self.phase)}
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.store.ping()
        except (SQLAlchemyError, OSError, TimeoutError) as error:
            log.warning("not ready: %s (%s)", DATABASE_UNREACHABLE, type(error).__name__)
            return False, {"reason": DATABASE_UNREACHABLE}
        return True, {}
