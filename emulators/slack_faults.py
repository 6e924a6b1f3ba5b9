"""Transport faults for the Web API: a call that never gets an HTTP answer.

Slack's edge sometimes drops a connection or stops answering; the client then sees an aiohttp error,
not an `{"ok": false}` body. The fault strikes after the request has been read and before Slack
would act on it, so the call has no effect (no message is posted or edited) and no answer is sent:

- DISCONNECT: the server closes the connection (FIN) -> aiohttp `ServerDisconnectedError`.
- RESET: the server resets it (RST) -> aiohttp `ClientOSError` "[Errno 104] Connection reset by peer".
- STALL: no answer for `stall_s` (or until the emulator stops), then the connection is cut: a client
  whose timeout is shorter gives up first (`asyncio.TimeoutError`).
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections import Counter
from enum import StrEnum

from aiohttp import web

from emulators.slack_signal import StateSignal

STALL_S = 60.0


class TransportFault(StrEnum):
    """How a Web API call fails below HTTP."""

    DISCONNECT = "disconnect"
    RESET = "reset"
    STALL = "stall"


class TransportFaults:
    """Scripted "fail the next N calls of a method" rules; counts the faults served."""

    def __init__(self, signal: StateSignal) -> None:
        self.signal = signal
        self.served: Counter[str] = Counter()
        self._queued: dict[str, list[tuple[TransportFault, float]]] = {}
        self._stopping = asyncio.Event()

    def fail_next(self, method: str, fault: TransportFault, count: int = 1, *, stall_s: float = STALL_S) -> None:
        """Make the next `count` calls to `method` fail with `fault` (after any already queued)."""
        if count < 1:
            raise ValueError("count must be at least 1")
        self._queued.setdefault(method, []).extend([(fault, stall_s)] * count)

    def clear(self, method: str | None = None) -> None:
        """Forget the queued faults of one method, or of all."""
        if method is None:
            self._queued.clear()
        else:
            self._queued.pop(method, None)

    def release(self) -> None:
        """End every stall now (the emulator is stopping)."""
        self._stopping.set()

    async def strike(self, method: str, request: web.Request) -> bool:
        """Inflict the next queued fault of `method` on `request`; False if none is queued."""
        queued = self._queued.get(method)
        if not queued:
            return False
        fault, stall_s = queued.pop(0)
        self.served[method] += 1
        self.signal.changed()
        if fault is TransportFault.STALL:
            try:
                async with asyncio.timeout(stall_s):
                    await self._stopping.wait()
            except TimeoutError:
                pass
        _cut(request, reset=fault is TransportFault.RESET)
        return True


def _cut(request: web.Request, *, reset: bool) -> None:
    """Close the connection without an answer: FIN, or RST when `reset` (SO_LINGER 0)."""
    transport = request.transport
    if transport is None:
        return  # the client has already hung up
    sock = transport.get_extra_info("socket")
    if reset and sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
