"""No accidental spend in DMs and group DMs: text gets help or a reaction, photos get a consultation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.actions import ANALYSE_TEXT
from bot.interactive import ANALYSING
from bot.store import Store
from emulators.claude import ClaudeEmulator
from emulators.slack import SlackEmulator
from tests.bot_support import (
    ALICE,
    WAIT_S,
    Upload,
    bot_replies,
    bot_settings,
    rendered,
    running_bot,
    upload,
    wait_boards,
    wait_finished,
)
from tests.engine_support import jpeg_bytes

BOB = "U2"


@pytest.fixture
async def bot(slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path) -> AsyncIterator[None]:
    async with running_bot(slack, claude, bot_settings(slack, tmp_path), max_retries=0):
        yield


def _buttons(blocks: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Every interactive element of a message (in actions blocks or as a section's accessory)."""
    found: list[dict[str, Any]] = []
    for block in blocks or []:
        elements = [*block.get("elements", []), block.get("accessory") or {}]
        found += [e for e in elements if isinstance(e, dict) and "action_id" in e]
    return found


async def _say(slack: SlackEmulator, channel: str, text: str) -> str:
    event = slack.user_message(channel, ALICE, text)
    await slack.wait_for_ack(await slack.deliver_event(event), WAIT_S)
    return str(event["ts"])


@pytest.mark.parametrize("text", ["thanks!", "Thank you so much", ":pray: :tada:", "👍"])
async def test_small_talk_in_a_dm_gets_a_reaction_and_no_claude_call(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: None, text: str
) -> None:
    dm = slack.add_im(ALICE)
    ts = await _say(slack, dm.id, text)
    await slack.wait_until(lambda: bool(slack.reactions(dm.id, ts)), WAIT_S, what="a reaction")
    assert bot_replies(slack, dm.id, ts) == []
    assert claude.requests == []


@pytest.mark.parametrize("kind", ["im", "mpim"])
async def test_dm_text_gets_a_help_reply_with_an_analyse_button_and_no_claude_call(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: None, kind: str
) -> None:
    channel = slack.add_im(ALICE) if kind == "im" else slack.add_mpim([ALICE, BOB])
    ts = await _say(slack, channel.id, "gasket for a 90 C hot-water flange, 2,000 a year")
    await slack.wait_until(lambda: bool(bot_replies(slack, channel.id, ts)), WAIT_S, what="the help")
    (help_reply,) = bot_replies(slack, channel.id, ts)
    (button,) = [b for b in _buttons(help_reply.blocks) if b.get("action_id") == ANALYSE_TEXT]
    assert button["value"] == f"{channel.id}:{ts}"
    assert claude.requests == []
    assert slack.reactions(channel.id, ts) == {}


async def test_a_group_dm_upload_gets_a_consultation_like_a_dm(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: None
) -> None:
    group = slack.add_mpim([ALICE, BOB])
    sent = await upload(slack, jpeg_bytes(800, 600), channel=group.id)
    replies = await wait_finished(slack, sent)
    assert any("Metal" in rendered(r) for r in replies)
    assert "white_check_mark" in slack.reactions(group.id, sent.ts)


async def test_a_mention_in_a_group_dm_is_still_text_that_gets_help(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: None
) -> None:
    group = slack.add_mpim([ALICE, BOB])
    mention = slack.mention_event(group.id, ALICE, "an oven door hinge at 250 C")
    await slack.wait_for_ack(await slack.deliver_event(mention), WAIT_S)
    twin = slack.message_event(group.id, str(mention["ts"]))
    await slack.wait_for_ack(await slack.deliver_event(twin), WAIT_S)
    sent = Upload.of(mention)
    await slack.wait_until(lambda: bool(bot_replies(slack, sent.channel, sent.ts)), WAIT_S, what="the help")
    (help_reply,) = bot_replies(slack, sent.channel, sent.ts)
    assert any(b.get("action_id") == ANALYSE_TEXT for b in _buttons(help_reply.blocks))
    assert claude.requests == []


async def test_the_analyse_button_runs_the_dm_text_as_a_consultation_in_its_thread(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: None, tmp_path: Path
) -> None:
    dm = slack.add_im(ALICE)
    ts = await _say(slack, dm.id, "gasket for a 90 C hot-water flange, 2,000 a year")
    await slack.wait_until(lambda: bool(bot_replies(slack, dm.id, ts)), WAIT_S, what="the help")
    (help_reply,) = bot_replies(slack, dm.id, ts)
    await slack.click(ALICE, dm.id, help_reply.ts, ANALYSE_TEXT)
    await slack.click(ALICE, dm.id, help_reply.ts, ANALYSE_TEXT)  # a double click starts nothing more
    boards = await wait_boards(slack, Upload(dm.id, ts))
    (board,) = [b for b in boards if b.ts != help_reply.ts]
    assert "Best: Metal" in rendered(board)
    await slack.wait_until(lambda: ANALYSING in rendered(slack.message(dm.id, help_reply.ts)), WAIT_S)
    assert not _buttons(slack.message(dm.id, help_reply.ts).blocks)  # the button served its purpose
    branches = [r for r in claude.requests if r.kind.kind == "branch"]
    assert len(branches) == 6 and all(r.image_sizes == [] for r in branches)
    assert all("90 C hot-water flange" in str(r.body["messages"]) for r in branches)
    async with await Store.open(f"sqlite:///{tmp_path / 'bot.db'}") as store:
        (record,) = await store.for_message(dm.id, ts)
    assert record.channel_type == "im" and record.user_id == ALICE and not record.files


async def test_a_dm_thread_reply_without_a_consultation_gets_help_not_a_consultation(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: None
) -> None:
    dm = slack.add_im(ALICE)
    ts = await _say(slack, dm.id, "hello")
    await slack.wait_until(lambda: bool(bot_replies(slack, dm.id, ts)), WAIT_S, what="the help")
    reply = slack.user_message(dm.id, ALICE, "a hinge for an oven door at 250 C", thread_ts=ts)
    await slack.wait_for_ack(await slack.deliver_event(reply), WAIT_S)
    await slack.wait_until(lambda: len(bot_replies(slack, dm.id, ts)) == 2, WAIT_S, what="the second help")
    (button,) = [b for b in _buttons(bot_replies(slack, dm.id, ts)[1].blocks) if b.get("action_id") == ANALYSE_TEXT]
    assert button["value"] == f"{dm.id}:{reply['ts']}"
    assert claude.requests == []
