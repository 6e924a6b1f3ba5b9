"""Two real `python -m bot` processes on one PostgreSQL database share MATREC_CONCURRENCY: with 3 set
and uploads split over both, Claude never sees more than 3 calls at once, although each instance
had more branches waiting than 3 and, counting on its own, would have run 3 itself."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path

from bot.store import Store
from emulators.claude import ClaudeEmulator
from emulators.slack import SlackEmulator
from tests.bot_support import upload, wait_finished
from tests.engine_support import jpeg_bytes
from tests.instances_support import behind_balancer
from tests.rerun_support import branches_since
from tests.store_support import fresh_database

PHOTO = jpeg_bytes(800, 600)
CONCURRENCY = 3
CHANNELS = ("C0DESIGN", "C0TOOLING", "C0PLANT", "C0LAB")  # one upload each, two reaching each instance


async def test_two_bot_processes_together_never_exceed_the_shared_concurrency(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    for channel in CHANNELS:
        slack.add_channel(channel.lower(), channel_id=channel)
    claude.latency_s = 0.3  # long enough for every instance's branches to queue up
    extra = {"MATREC_CONCURRENCY": str(CONCURRENCY)}
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(fresh_database("postgres", tmp_path))
        balancer = await stack.enter_async_context(behind_balancer(slack, claude, url, tmp_path, extra))
        claude.reset_stats()

        sent = await asyncio.gather(*(upload(slack, PHOTO, channel=channel) for channel in CHANNELS))
        for one in sent:
            await wait_finished(slack, one)

        async with await Store.open(url) as store:
            done = [c for one in sent for c in await store.for_message(one.channel, one.ts)]

    assert sorted(instance for instance, kind in balancer.served if kind == "event") == [0, 0, 1, 1]
    assert len(branches_since(claude, 0)) == 6 * len(CHANNELS)
    assert len({c.owner for c in done}) == 2  # both instances ran consultations...
    finished = [c.created_at + timedelta(seconds=c.recommendation.timing.wall_s) for c in done if c.recommendation]
    assert len(finished) == len(CHANNELS)
    assert max(c.created_at for c in done) < min(finished)  # ...all at once: 24 branches wanted a slot
    assert claude.peak_concurrency == CONCURRENCY  # the shared bound was reached, never passed
