"""Two bot instances on one PostgreSQL database, in HTTP mode behind one round-robin request URL (a
loopback load balancer): two people pressing Re-run at the same moment, one press reaching each
instance, make one re-run. Both instances run in this test's event loop, each its own serve()."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

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
from tests.engine_support import jpeg_bytes
from tests.rerun_support import branches_since, charts, wait_final_boards, with_action
from tests.store_support import fresh_database

PHOTO = jpeg_bytes(800, 600)
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


async def test_two_instances_on_one_postgres_database_make_one_rerun_of_two_simultaneous_presses(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(fresh_database("postgres", tmp_path))
        instances = [
            await stack.enter_async_context(
                running_bot(slack, claude, bot_settings(slack, tmp_path, socket=False, DATABASE_URL=url), max_retries=0)
            )
            for _ in range(2)
        ]
        balancer = RoundRobin([str(running.base_url) for running in instances])
        events_url = await stack.enter_async_context(balancer.serving())
        slack.set_http_target(signing_secret=SIGNING_SECRET, events_url=events_url)

        sent = await upload(slack, PHOTO)
        await wait_finished(slack, sent)
        (board,) = with_action(slack, sent, actions.RERUN)
        start = len(claude.requests)

        await asyncio.gather(
            slack.click(ALICE, GENERAL, board.ts, actions.RERUN), slack.click(BOB, GENERAL, board.ts, actions.RERUN)
        )
        await wait_final_boards(slack, sent, 2)
        async with asyncio.timeout(WAIT_S):
            for running in instances:
                await running.consultant.drain()

        clicks = [instance for instance, kind in balancer.served if kind == "interactive"]
        assert sorted(clicks) == [0, 1]  # one press reached each instance
        assert len(branches_since(claude, start)) == 6
        assert charts(slack, sent) == 2
        async with await Store.open(url) as store:
            records = await store.for_thread(sent.channel, sent.ts)
        assert [r.kind for r in records] == [ConsultationKind.UPLOAD, ConsultationKind.RERUN]
        notes = [
            r for user in (ALICE, BOB) for r in slack.responses(user) if r["text"] in (ALREADY_STARTED, ALREADY_DONE)
        ]
        assert len(notes) == 1
