"""Two or more bot instances behind one request URL: a round-robin load balancer on loopback, and
`python -m bot` as a real process in HTTP mode (this checkout on PYTHONPATH, whatever the venv has
installed), healthy before it is used and stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import aiohttp
from aiohttp import web

from emulators.claude import ClaudeEmulator
from emulators.slack import SlackEmulator
from emulators.slack_loopback import LoopbackServer
from tests.bot_support import SIGNING_SECRET
from tests.engine_support import KEY

ROOT = Path(__file__).resolve().parents[1]  # the checkout under test, whatever the venv has installed
START_S = 30.0
EVENTS_PATH = "/slack/events"
FORWARDED = (
    "Content-Type",
    "X-Slack-Signature",
    "X-Slack-Request-Timestamp",
    "X-Slack-Retry-Num",
    "X-Slack-Retry-Reason",
)


class RoundRobin:
    """A load balancer in front of the instances: each request to the next one in turn."""

    def __init__(self, backends: Sequence[str]) -> None:
        self.backends = backends
        self.served: list[tuple[int, str]] = []  # (instance, "interactive" | "event") per request, in order
        self._next = itertools.cycle(range(len(backends)))
        self._session: aiohttp.ClientSession | None = None
        app = web.Application()
        app.router.add_post(EVENTS_PATH, self._forward)
        self._server = LoopbackServer(app)

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        """Listen on a free port; yields the request URL Slack is given."""
        async with aiohttp.ClientSession() as session:
            self._session = session
            base = await self._server.start()
            try:
                yield f"{base}{EVENTS_PATH}"
            finally:
                await self._server.stop()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        instance = next(self._next)
        body = await request.read()
        self.served.append((instance, "interactive" if body.startswith(b"payload=") else "event"))
        headers = {name: request.headers[name] for name in FORWARDED if name in request.headers}
        async with self._session.post(self.backends[instance] + EVENTS_PATH, data=body, headers=headers) as answer:
            return web.Response(
                status=answer.status, body=await answer.read(), content_type=answer.content_type or None
            )


@asynccontextmanager
async def bot_process(
    slack: SlackEmulator, claude: ClaudeEmulator, url: str, tmp_path: Path, **extra: str
) -> AsyncIterator[str]:
    """`python -m bot` in HTTP mode on a free port, healthy; yields its base URL, stopped with SIGTERM."""
    port = free_port()
    keep = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG"}}
    env = keep | {
        "PYTHONPATH": str(ROOT),
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "ANTHROPIC_API_KEY": KEY,
        "ANTHROPIC_BASE_URL": claude.base_url,
        "DATABASE_URL": url,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "MATREC_UPDATE_INTERVAL_S": "0.05",
        **extra,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", env=env, cwd=tmp_path, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    stderr = asyncio.create_task(process.stderr.read())  # drained all along: a full pipe would block the bot
    base = f"http://127.0.0.1:{port}"
    try:
        await healthy(base, stderr)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), START_S)
        await stderr


async def healthy(base: str, stderr: asyncio.Task[bytes]) -> None:
    async with aiohttp.ClientSession() as session, asyncio.timeout(START_S):
        while True:
            assert not stderr.done(), f"the bot exited: {(await stderr).decode()[-2000:]}"
            try:
                async with session.get(f"{base}/healthz") as answer:
                    if answer.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def behind_balancer(
    slack: SlackEmulator,
    claude: ClaudeEmulator,
    url: str,
    tmp_path: Path,
    env: Mapping[str, str] | None = None,
    *,
    count: int = 2,
) -> AsyncIterator[RoundRobin]:
    """`count` bot processes on the database at `url` with `env` added to their environment, behind
    one round-robin request URL that Slack is given; yields the balancer (its `backends` are the
    instances' base URLs)."""
    async with AsyncExitStack() as stack:
        backends = [
            await stack.enter_async_context(bot_process(slack, claude, url, tmp_path, **(env or {})))
            for _ in range(count)
        ]
        balancer = RoundRobin(backends)
        events_url = await stack.enter_async_context(balancer.serving())
        slack.set_http_target(signing_secret=SIGNING_SECRET, events_url=events_url)
        yield balancer
