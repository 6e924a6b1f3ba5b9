"""Two bot instances on one PostgreSQL database, in HTTP mode behind one round-robin request URL (a
loopback load balancer): two people pressing Re-run at the same moment, one press reaching each
instance, make one re-run. Once with both instances in this test's event loop (each its own
serve()), once as two real `python -m bot` processes."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bot import actions
from bot.interactive import ALREADY_DONE, ALREADY_STARTED
from bot.store import ConsultationKind, Store
from emulators.claude import ClaudeEmulator
from emulators.slack import SlackEmulator
from emulators.slack_loopback import LoopbackServer
from tests.bot_support import (
    ALICE,
    BOB,
    GENERAL,
    SIGNING_SECRET,
    WAIT_S,
    bot_settings,
    running_bot,
    upload,
    wait_finished,
)
from tests.engine_support import KEY, jpeg_bytes
from tests.rerun_support import branches_since, charts, wait_final_boards, with_action
from tests.store_support import fresh_database

PHOTO = jpeg_bytes(800, 600)
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


async def _two_presses_make_one_rerun(
    slack: SlackEmulator,
    claude: ClaudeEmulator,
    url: str,
    backends: Sequence[str],
    drain: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Behind a round-robin URL over `backends`: an upload, then Alice and Bob press Re-run at once."""
    balancer = RoundRobin(backends)
    async with balancer.serving() as events_url:
        slack.set_http_target(signing_secret=SIGNING_SECRET, events_url=events_url)
        sent = await upload(slack, PHOTO)
        await wait_finished(slack, sent)
        (board,) = with_action(slack, sent, actions.RERUN)
        start = len(claude.requests)

        await asyncio.gather(
            slack.click(ALICE, GENERAL, board.ts, actions.RERUN), slack.click(BOB, GENERAL, board.ts, actions.RERUN)
        )
        await wait_final_boards(slack, sent, 2)
        await slack.wait_until(lambda: bool(_notes(slack)), WAIT_S, what="the note to the press that lost")
        if drain is not None:
            await drain()

    clicks = [instance for instance, kind in balancer.served if kind == "interactive"]
    assert sorted(clicks) == [0, 1]  # one press reached each instance
    assert len(branches_since(claude, start)) == 6
    assert charts(slack, sent) == 2
    async with await Store.open(url) as store:
        records = await store.for_thread(sent.channel, sent.ts)
    assert [r.kind for r in records] == [ConsultationKind.UPLOAD, ConsultationKind.RERUN]
    assert len(_notes(slack)) == 1


def _notes(slack: SlackEmulator) -> list[dict[str, Any]]:
    """The notes that a press was a duplicate, to whoever pressed."""
    return [r for user in (ALICE, BOB) for r in slack.responses(user) if r["text"] in (ALREADY_STARTED, ALREADY_DONE)]


async def test_two_instances_on_one_postgres_database_make_one_rerun_of_two_simultaneous_presses(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(fresh_database("postgres", tmp_path))
        settings = bot_settings(slack, tmp_path, socket=False, DATABASE_URL=url)
        instances = [
            await stack.enter_async_context(running_bot(slack, claude, settings, max_retries=0)) for _ in range(2)
        ]

        async def drain() -> None:
            async with asyncio.timeout(WAIT_S):
                for running in instances:
                    await running.consultant.drain()

        await _two_presses_make_one_rerun(slack, claude, url, [str(r.base_url) for r in instances], drain)


async def test_two_bot_processes_on_one_postgres_database_make_one_rerun_of_two_simultaneous_presses(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(fresh_database("postgres", tmp_path))
        backends = [await stack.enter_async_context(_bot_process(slack, claude, url, tmp_path)) for _ in range(2)]

        await _two_presses_make_one_rerun(slack, claude, url, backends)


@asynccontextmanager
async def _bot_process(slack: SlackEmulator, claude: ClaudeEmulator, url: str, tmp_path: Path) -> AsyncIterator[str]:
    """`python -m bot` in HTTP mode on a free port, healthy; yields its base URL, stopped with SIGTERM."""
    port = _free_port()
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
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", env=env, cwd=tmp_path, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    stderr = asyncio.create_task(process.stderr.read())  # drained all along: a full pipe would block the bot
    base = f"http://127.0.0.1:{port}"
    try:
        await _healthy(base, stderr)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), START_S)
        await stderr


async def _healthy(base: str, stderr: asyncio.Task[bytes]) -> None:
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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
