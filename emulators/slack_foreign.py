"""A host that is not Slack's: serves fixed bytes and records whether callers sent it a token."""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import TracebackType

from aiohttp import web

from emulators.slack_loopback import LoopbackServer


@dataclass(frozen=True)
class ForeignRequest:
    """One request the foreign host received; `authorization` is the raw header, if any."""

    method: str
    path: str
    host: str
    authorization: str | None
    at: float

    @property
    def carried_token(self) -> bool:
        """True if the caller sent an Authorization header here."""
        return self.authorization is not None


class ForeignHost:
    """A second loopback server (another port, optionally another 127.x address) for redirect tests."""

    def __init__(
        self, body: bytes = b"", content_type: str = "application/octet-stream", *, host: str = "127.0.0.1"
    ) -> None:
        self.body = body
        self.content_type = content_type
        self.requests: list[ForeignRequest] = []
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._server = LoopbackServer(app, host)

    async def start(self) -> str:
        """Start serving and return the base URL."""
        return await self._server.start()

    async def stop(self) -> None:
        """Stop serving."""
        await self._server.stop()

    async def __aenter__(self) -> ForeignHost:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """`http://host:port` of this host."""
        return self._server.base_url

    def url(self, path: str) -> str:
        """An absolute URL on this host."""
        return f"{self.base_url}/{path.lstrip('/')}"

    def serve(self, body: bytes, content_type: str) -> None:
        """Answer every later request with these bytes."""
        self.body, self.content_type = body, content_type

    @property
    def received_token(self) -> bool:
        """True if any request to this host carried an Authorization header."""
        return any(r.carried_token for r in self.requests)

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append(
            ForeignRequest(
                request.method,
                request.path_qs,
                request.host,
                request.headers.get("Authorization"),
                time.monotonic(),
            )
        )
        return web.Response(body=self.body, content_type=self.content_type)
