"""Socket Mode: the websocket Slack pushes envelopes over, with hello, acks and disconnects."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import WSCloseCode, WSMsgType, web

from emulators.slack_identity import AppIdentity, JsonDict
from emulators.slack_signal import StateSignal

CLOSE_TIMEOUT_S = 1.0
SOCKET_PATH = "/socket"


@dataclass(frozen=True)
class Ack:
    """An ack the app sent back (`{"envelope_id": ..., "payload"?: ...}`); `at` is monotonic seconds."""

    envelope_id: str
    payload: JsonDict | None
    connection_id: int
    at: float


@dataclass(frozen=True)
class Delivery:
    """An envelope the emulator pushed to the app; `at` is monotonic seconds."""

    envelope_id: str
    type: str
    payload: JsonDict
    retry_attempt: int
    retry_reason: str
    connection_id: int
    at: float

    @property
    def event_id(self) -> str | None:
        """The event_callback's event_id, for events_api envelopes."""
        value = self.payload.get("event_id")
        return value if isinstance(value, str) else None


@dataclass
class SocketConnection:
    """One websocket session of the app."""

    id: int
    ws: web.WebSocketResponse
    request: web.Request
    opened_at: float
    closed_at: float | None = None
    received: list[JsonDict] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        """True until the socket closed."""
        return self.closed_at is None


class SocketModeServer:
    """Issues wss URLs for apps.connections.open and serves the sockets they lead to."""

    def __init__(self, identity: AppIdentity, signal: StateSignal, rng: random.Random) -> None:
        self.identity = identity
        self.signal = signal
        self.rng = rng
        self.connections: list[SocketConnection] = []
        self.deliveries: dict[str, Delivery] = {}
        self.acks: dict[str, Ack] = {}
        self.tickets_issued: list[str] = []
        self.ack_listeners: list[Callable[[Delivery, Ack], None]] = []
        self._ids = itertools.count(1)
        self._accepting = True

    @property
    def open_connections(self) -> list[SocketConnection]:
        """The sockets currently open, oldest first."""
        return [c for c in self.connections if c.is_open]

    def issue_url(self, http_base_url: str) -> str:
        """A fresh `ws://.../socket?ticket=...` URL, as apps.connections.open returns."""
        ticket = str(uuid.uuid4())
        self.tickets_issued.append(ticket)
        ws_base = http_base_url.replace("http://", "ws://", 1)
        return f"{ws_base}{SOCKET_PATH}?ticket={ticket}&app_id={self.identity.app_id}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Accept a websocket with a ticket we issued, say hello, then read acks until it closes."""
        if not self._accepting or request.query.get("ticket") not in self.tickets_issued:
            return web.Response(status=401, text="invalid ticket")
        ws = web.WebSocketResponse(autoping=True, timeout=CLOSE_TIMEOUT_S)
        await ws.prepare(request)
        conn = SocketConnection(next(self._ids), ws, request, time.monotonic())
        self.connections.append(conn)
        await ws.send_str(json.dumps(self._hello()))
        self.signal.changed()
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._on_text(conn, message.data)
        finally:
            conn.closed_at = time.monotonic()
            self.signal.changed()
        return ws

    def _hello(self) -> JsonDict:
        return {
            "type": "hello",
            "num_connections": len(self.open_connections),
            "debug_info": {
                "host": "applink-emulator",
                "build_number": 1,
                "approximate_connection_time": 18060,
            },
            "connection_info": {"app_id": self.identity.app_id},
        }

    def _on_text(self, conn: SocketConnection, data: str) -> None:
        try:
            message = json.loads(data)
        except json.JSONDecodeError:
            message = {"unparsed": data}
        if not isinstance(message, dict):
            message = {"unparsed": data}
        conn.received.append(message)
        envelope_id = message.get("envelope_id")
        if isinstance(envelope_id, str) and envelope_id not in self.acks:
            payload = message.get("payload")
            ack = Ack(envelope_id, payload if isinstance(payload, dict) else None, conn.id, time.monotonic())
            self.acks[envelope_id] = ack
            delivery = self.deliveries.get(envelope_id)
            if delivery is not None:
                for listener in self.ack_listeners:
                    listener(delivery, ack)
        self.signal.changed()

    async def send_envelope(
        self,
        envelope_type: str,
        payload: JsonDict,
        *,
        retry_attempt: int,
        retry_reason: str,
        accepts_response_payload: bool,
        timeout_s: float,
        envelope_id: str | None = None,
    ) -> str:
        """Push one envelope to a random open socket (waiting for one); returns its envelope_id."""
        await self.signal.wait_until(lambda: bool(self.open_connections), timeout_s, "a Socket Mode connection")
        conn = self.rng.choice(self.open_connections)
        envelope_id = envelope_id or str(uuid.uuid4())
        envelope: JsonDict = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": envelope_type,
            "accepts_response_payload": accepts_response_payload,
        }
        if envelope_type == "events_api":
            envelope.update({"retry_attempt": retry_attempt, "retry_reason": retry_reason})
        self.deliveries[envelope_id] = Delivery(
            envelope_id, envelope_type, payload, retry_attempt, retry_reason, conn.id, time.monotonic()
        )
        await conn.ws.send_str(json.dumps(envelope))
        self.signal.changed()
        return envelope_id

    async def send_disconnect(self, reason: str) -> None:
        """Tell every open socket to reconnect (`warning`, `refresh_requested`, `link_disabled`...)."""
        message = {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-emulator"}}
        for conn in self.open_connections:
            await conn.ws.send_str(json.dumps(message))

    async def drop(self, *, graceful: bool) -> None:
        """Close every open socket: with a close frame, or by cutting the TCP connection."""
        for conn in self.open_connections:
            if graceful:
                await self._close(conn)
            elif conn.request.transport is not None:
                conn.request.transport.abort()

    async def close_all(self) -> None:
        """Refuse new sockets and close the open ones, quickly."""
        self._accepting = False
        for conn in self.open_connections:
            await self._close(conn)

    async def _close(self, conn: SocketConnection) -> None:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
        except TimeoutError:
            if conn.request.transport is not None:
                conn.request.transport.abort()
