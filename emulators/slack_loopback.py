"""An aiohttp application served on a loopback address and an ephemeral port."""

from __future__ import annotations

import socket

from aiohttp import web

SHUTDOWN_TIMEOUT_S = 1.0


class LoopbackServer:
    """Runs one `web.Application` on `host`:<free port> until `stop()`."""

    def __init__(self, app: web.Application, host: str = "127.0.0.1") -> None:
        self.app = app
        self.host = host
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        """`http://host:port` of the running server, without a trailing slash."""
        if self._runner is None:
            raise RuntimeError("the server is not running: call start() first")
        return f"http://{self.host}:{self.port}"

    async def start(self) -> str:
        """Bind a free port, start serving, and return the base URL."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._runner = runner
        return self.base_url

    async def stop(self) -> None:
        """Stop serving and release the port; safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
