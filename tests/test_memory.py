"""Similar earlier consultations: on the board only when everyone there may open them, else to the uploader."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import actions
from bot.store import Consultation, Store
from emulators.claude import ClaudeEmulator
from emulators.slack import SlackEmulator
from tests.bot_support import (
    ALICE,
    BOB,
    GENERAL,
    WAIT_S,
    Upload,
    bot_settings,
    rendered,
    running_bot,
    upload,
    wait_finished,
)
from tests.engine_support import jpeg_bytes

PHOTO = jpeg_bytes(640, 480)
SECRET = "G0SECRET"
BRACKET = "Wall bracket for a 20 kg pump, indoors, 500 a year"


@pytest.fixture
async def bot(slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path) -> AsyncIterator[None]:
    slack.add_channel("secret", channel_id=SECRET, is_private=True, members=[ALICE, slack.bot_user_id])
    async with running_bot(slack, claude, bot_settings(slack, tmp_path), max_retries=0):
        yield


async def record_of(tmp_path: Path, sent: Upload) -> Consultation:
    """The stored consultation of an upload."""
    async with await Store.open(f"sqlite:///{tmp_path / 'bot.db'}") as store:
        (record,) = await store.for_message(sent.channel, sent.ts)
    return record


async def finished_record(slack: SlackEmulator, tmp_path: Path, sent: Upload) -> Consultation:
    await wait_finished(slack, sent)
    record = await record_of(tmp_path, sent)
    assert record.board_ts is not None
    return record


def archive(channel: str) -> str:
    """The part of a permalink that names its conversation."""
    return f"/archives/{channel}/"


async def test_a_similar_consultation_everyone_here_can_open_is_linked_on_the_board(
    slack: SlackEmulator, bot: None, tmp_path: Path
) -> None:
    first = await finished_record(slack, tmp_path, await upload(slack, PHOTO, text=BRACKET, user=BOB))
    second = await finished_record(slack, tmp_path, await upload(slack, PHOTO, text="Bracket for a pump, outdoors"))
    assert second.board_ts is not None and first.board_ts is not None
    board = rendered(slack.message(GENERAL, second.board_ts))
    assert archive(GENERAL) + "p" + first.board_ts.replace(".", "") in board
    assert "bob looked at" in board and "<@" + BOB not in board  # a name, never a ping
    assert slack.ephemerals == []


async def test_a_similar_consultation_not_everyone_here_may_open_goes_to_the_uploader_alone_once(
    slack: SlackEmulator, bot: None, tmp_path: Path
) -> None:
    private = await finished_record(slack, tmp_path, await upload(slack, PHOTO, text=BRACKET, channel=SECRET))
    sent = await upload(slack, PHOTO, text="Bracket for a pump, outdoors")
    public = await finished_record(slack, tmp_path, sent)
    assert public.board_ts is not None and private.board_ts is not None
    assert archive(SECRET) not in rendered(slack.message(GENERAL, public.board_ts))
    await slack.wait_until(lambda: len(slack.ephemerals) == 1, WAIT_S, what="the private links")
    (note,) = slack.ephemerals
    assert note["user"] == ALICE and note["channel"] == GENERAL and note["thread_ts"] == sent.ts
    assert archive(SECRET) in str(note["blocks"])
    # A click re-renders the board: the private link stays off it and is not sent again.
    board = public.board_ts
    await slack.click(ALICE, GENERAL, board, actions.HELPFUL)
    await slack.wait_until(
        lambda: "found it helpful" in rendered(slack.message(GENERAL, board)), WAIT_S, what="the rating"
    )
    assert archive(SECRET) not in rendered(slack.message(GENERAL, board))
    assert len(slack.ephemerals) == 1


async def test_in_a_private_channel_a_public_earlier_consultation_is_linked_on_the_board(
    slack: SlackEmulator, bot: None, tmp_path: Path
) -> None:
    public = await finished_record(slack, tmp_path, await upload(slack, PHOTO, text=BRACKET))
    private = await finished_record(slack, tmp_path, await upload(slack, PHOTO, text=BRACKET, channel=SECRET))
    assert private.board_ts is not None
    assert archive(GENERAL) in rendered(slack.message(SECRET, private.board_ts))
    assert public.id != private.id and slack.ephemerals == []


async def test_in_a_group_dm_links_follow_what_every_member_of_it_may_open(
    slack: SlackEmulator, bot: None, tmp_path: Path
) -> None:
    group = slack.add_mpim([ALICE, BOB])
    shared = await finished_record(slack, tmp_path, await upload(slack, PHOTO, text=BRACKET, user=BOB))
    private = await finished_record(slack, tmp_path, await upload(slack, PHOTO, text=BRACKET, channel=SECRET))
    here = await finished_record(slack, tmp_path, await upload(slack, PHOTO, text=BRACKET, channel=group.id))
    assert here.board_ts is not None and shared.board_ts is not None and private.board_ts is not None
    board = rendered(slack.message(group.id, here.board_ts))
    assert archive(GENERAL) in board and archive(SECRET) not in board
    await slack.wait_until(lambda: len(slack.ephemerals) == 1, WAIT_S, what="the private link")
    (note,) = slack.ephemerals
    assert note["user"] == ALICE and note["channel"] == group.id and archive(SECRET) in str(note["blocks"])
