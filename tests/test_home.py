"""The App Home tab: each viewer sees their own and the team's consultations from their conversations only."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.store import Store
from emulators.claude import ClaudeEmulator
from emulators.slack import SlackEmulator
from tests.bot_support import ALICE, BOB, GENERAL, WAIT_S, Upload, bot_settings, running_bot, upload, wait_finished
from tests.engine_support import jpeg_bytes

PHOTO = jpeg_bytes(640, 480)
SECRET = "G0SECRET"


@pytest.fixture
async def bot(slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path) -> AsyncIterator[None]:
    slack.add_channel("secret", channel_id=SECRET, is_private=True, members=[ALICE, slack.bot_user_id])
    async with running_bot(slack, claude, bot_settings(slack, tmp_path), max_retries=0):
        yield


async def board_link(slack: SlackEmulator, tmp_path: Path, sent: Upload) -> str:
    """The permalink path of the upload's board, once final."""
    await wait_finished(slack, sent)
    async with await Store.open(f"sqlite:///{tmp_path / 'bot.db'}") as store:
        (record,) = await store.for_message(sent.channel, sent.ts)
    assert record.board_ts is not None
    return f"/archives/{sent.channel}/p{record.board_ts.replace('.', '')}"


async def home_of(slack: SlackEmulator, user: str) -> str:
    """Open `user`'s Home tab and return what it shows."""
    before = slack.home_view(user)
    await slack.open_home(user)
    await slack.wait_until(lambda: slack.home_view(user) not in (None, before), WAIT_S, what=f"the home of {user}")
    view = slack.home_view(user)
    assert view is not None and view["type"] == "home"
    return json.dumps(view["blocks"], ensure_ascii=False)


async def test_two_people_with_different_memberships_see_different_consultations(
    slack: SlackEmulator, bot: None, tmp_path: Path
) -> None:
    alices_secret = await board_link(slack, tmp_path, await upload(slack, PHOTO, text="Pump bracket", channel=SECRET))
    bobs = await board_link(slack, tmp_path, await upload(slack, PHOTO, text="Garden gear", user=BOB))
    alice, bob = await home_of(slack, ALICE), await home_of(slack, BOB)
    assert alices_secret in alice and bobs in alice
    assert alices_secret not in bob and bobs in bob
    mine = bob.split("The team's recent consultations")[0]
    assert bobs in mine and "You have not asked" not in mine  # Bob's own upload is under his recent ones
    assert "*1* consultation in the last" in bob and "*2* consultations in the last" in alice
    assert "Statistics" in alice and "Recommended: Metal 2" in alice


async def test_the_home_tab_before_any_consultation_explains_what_to_do(slack: SlackEmulator, bot: None) -> None:
    home = await home_of(slack, BOB)
    assert "/matrec help" in home and "No consultations yet" in home
    assert GENERAL not in home
