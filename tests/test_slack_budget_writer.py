"""Boards and the shared Slack budget: a final state the budget cannot afford to update in time is
posted as a new message, and the old board becomes a pointer to it once there is room; progress
gives way to finals; calls that got no room were never sent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from slack_sdk.errors import SlackApiError

from bot.blocks import Rendered
from bot.budget import BudgetedClient, NoRoom, Priority, calls_at
from bot.pointers import POINTER_TEXT
from bot.store import Store
from bot.store.slack_budget import Pointer
from bot.writer import MessageWriter, post_reply
from emulators.slack import SlackEmulator
from tests.budget_support import Seconds, budgeted_client, rates
from tests.store_support import fresh_database

GENERAL, ALICE = "C0GENERAL", "U1"
WAIT_S = 5.0


def board(text: str) -> Rendered:
    return Rendered(text=text, blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": text}}])


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with fresh_database("sqlite", tmp_path) as url, await Store.open(url) as opened:
        yield opened


async def _board(slack: SlackEmulator, client: BudgetedClient) -> tuple[str, str]:
    """A person's message and the board posted under it: (thread_ts, board_ts)."""
    thread_ts = str(slack.user_message(GENERAL, ALICE, "bracket for a 20 kg pump")["ts"])
    return thread_ts, await post_reply(client, channel=GENERAL, thread_ts=thread_ts, rendered=board("Analysing…"))


def _latest(slack: SlackEmulator, ts: str) -> str:
    return slack.versions(GENERAL, ts)[-1].text


async def test_a_final_with_no_update_room_in_time_is_posted_anew_and_the_old_board_points_to_it_later(
    slack: SlackEmulator, store: Store
) -> None:
    clock = Seconds()  # the budget refills only when the test says so
    slack_rates = rates(tier3=1, burst=1, reserve=0)
    client = budgeted_client(slack, store, slack_rates, final_update_wait_s=0.1, clock=clock)
    assert client.budget is not None and client.budget.pointers is not None
    thread_ts, board_ts = await _board(slack, client)
    writer = MessageWriter(
        client,
        channel=GENERAL,
        ts=board_ts,
        thread_ts=thread_ts,
        shown=board("Analysing…"),
        interval_s=0.0,
        budget=client.budget,
    )
    writer.submit(board("half way"))  # takes the one chat.update there is
    await slack.wait_until(lambda: _latest(slack, board_ts) == "half way", WAIT_S)
    clock.advance(1.5)  # room for a post in the channel again (one a second), not for an update
    await writer.close(board("Best: Metal"))

    assert writer.moved == 1 and writer.ts != board_ts
    assert _latest(slack, writer.ts) == "Best: Metal" and _latest(slack, board_ts) == "half way"
    assert await store.pending_pointers() == [Pointer(GENERAL, board_ts, thread_ts, writer.ts)]
    assert await client.budget.pointers.land_due() == 1  # tried, but there is no room yet
    assert await store.pending_pointers() != []

    clock.advance(60)  # a minute later: room for one chat.update
    assert await client.budget.pointers.land_due() == 1
    assert _latest(slack, board_ts) == POINTER_TEXT
    assert await store.pending_pointers() == []
    assert slack.ratelimited_count.total() == 0


async def test_progress_gives_way_at_once_where_only_the_reserve_is_left_and_a_final_still_goes(
    slack: SlackEmulator, store: Store
) -> None:
    client = budgeted_client(slack, store, rates(tier3=3, burst=3, reserve=2), clock=Seconds())
    thread_ts, board_ts = await _board(slack, client)
    with calls_at(Priority.PROGRESS):
        await client.chat_update(channel=GENERAL, ts=board_ts, text="half way")
        with pytest.raises(NoRoom) as refused:
            await client.chat_update(channel=GENERAL, ts=board_ts, text="further")
        await client.reactions_add(channel=GENERAL, timestamp=thread_ts, name="eyes")
        with pytest.raises(SlackApiError):  # a 429 to whoever handles Slack's own
            await client.reactions_add(channel=GENERAL, timestamp=thread_ts, name="eyes")
    assert refused.value.response.status_code == 429 and refused.value.response["error"] == "ratelimited"
    with calls_at(Priority.FINAL, wait_s=0.0):
        await client.chat_update(channel=GENERAL, ts=board_ts, text="Best: Metal")
        await client.chat_update(channel=GENERAL, ts=board_ts, text="Best: Metal, again")
    assert [c.params["text"] for c in slack.calls_to("chat.update")] == [
        "half way",
        "Best: Metal",
        "Best: Metal, again",
    ]
    assert len(slack.calls_to("reactions.add")) == 1  # the refused ones were never sent


async def test_a_final_waiting_for_room_goes_before_an_ordinary_call_that_waited_longer(
    slack: SlackEmulator, store: Store
) -> None:
    client = budgeted_client(slack, store, rates(tier3=60, burst=1, reserve=0))  # one a second
    assert client.budget is not None
    _, board_ts = await _board(slack, client)
    await client.chat_update(channel=GENERAL, ts=board_ts, text="half way")  # the bucket is empty now

    async def update(text: str, priority: Priority) -> None:
        with calls_at(priority):
            await client.chat_update(channel=GENERAL, ts=board_ts, text=text)

    ordinary = asyncio.create_task(update("ordinary", Priority.NORMAL))
    await slack.wait_until(lambda: client.budget is not None and client.budget.refused["chat.update"] == 0, WAIT_S)
    final = asyncio.create_task(update("Best: Metal", Priority.FINAL))
    await asyncio.gather(ordinary, final)
    assert [c.params["text"] for c in slack.calls_to("chat.update")] == ["half way", "Best: Metal", "ordinary"]
