"""Two bot instances on one PostgreSQL database, in HTTP mode behind one round-robin request URL (a
loopback load balancer): two people pressing Re-run at the same moment, one press reaching each
instance, make one re-run. Once with both instances in this test's event loop (each its own
serve()), once as two real `python -m bot` processes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from bot import actions
from bot.interactive import ALREADY_DONE, ALREADY_STARTED
from bot.store import ConsultationKind, Store
from emulators.claude import ClaudeEmulator
from emulators.slack import SlackEmulator
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
from tests.instances_support import RoundRobin, bot_process
from tests.rerun_support import branches_since, charts, wait_final_boards, with_action
from tests.store_support import fresh_database

PHOTO = jpeg_bytes(800, 600)


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
        backends = [await stack.enter_async_context(bot_process(slack, claude, url, tmp_path)) for _ in range(2)]

        await _two_presses_make_one_rerun(slack, claude, url, backends)
