"""`/matrec` end to end: every answer ephemeral, memory answers only from the asker's conversations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot import actions
from bot.blocks.replies import muted_notice
from bot.command import HISTORY_MAX
from bot.interactive import UNMUTED
from bot.store import Consultation, Store
from emulators.claude import ClaudeEmulator
from emulators.slack import SlackEmulator
from tests.bot_support import (
    ALICE,
    BOB,
    GENERAL,
    SIGNING_SECRET,
    WAIT_S,
    Upload,
    bot_settings,
    running_bot,
    upload,
    wait_finished,
)
from tests.engine_support import jpeg_bytes

PHOTO = jpeg_bytes(640, 480)
SECRET = "G0SECRET"
NO_BOT = "C0NOBOT"


@pytest.fixture
async def bot(slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path) -> AsyncIterator[None]:
    slack.add_channel("secret", channel_id=SECRET, is_private=True, members=[ALICE, slack.bot_user_id])
    slack.add_channel("no-bot", channel_id=NO_BOT, members=[ALICE, BOB])
    async with running_bot(slack, claude, bot_settings(slack, tmp_path), max_retries=0):
        yield


async def run(slack: SlackEmulator, user: str, channel: str, text: str) -> dict[str, Any]:
    """Run `/matrec text` as `user` and wait for the one answer it gets."""
    seen = len(slack.responses(user))
    await slack.slash_command(user, channel, text)
    await slack.wait_until(lambda: len(slack.responses(user)) > seen, WAIT_S, what=f"the answer to {text!r}")
    answer = slack.responses(user)[seen]
    return answer


def shown(answer: dict[str, Any]) -> str:
    return str(answer["text"]) + str(answer["blocks"] or "")


async def done(slack: SlackEmulator, tmp_path: Path, sent: Upload) -> Consultation:
    await wait_finished(slack, sent)
    async with await Store.open(f"sqlite:///{tmp_path / 'bot.db'}") as store:
        (record,) = await store.for_message(sent.channel, sent.ts)
    return record


async def test_every_answer_is_seen_by_the_asker_alone(slack: SlackEmulator, bot: None, tmp_path: Path) -> None:
    await done(slack, tmp_path, await upload(slack, PHOTO))
    posted = len(slack.history(GENERAL))
    texts = {
        "help": "/matrec ask",
        "": "/matrec history",
        "frobnicate": "I do not know `frobnicate`",
        "history": "The latest consultation",
        "history 3": "The latest consultation",
        "history abc": "takes a number",
        f"history {HISTORY_MAX + 1}": "out of that range",
        "history 0": "out of that range",
        "search": "Tell me what to look for",
        "search bracket": "matching",
        "search zeppelin": "No consultation matches",
        "stats": "*1* consultation in the last",
        "ask": "Describe the part",
    }
    for text, expected in texts.items():
        answer = await run(slack, ALICE, GENERAL, text)
        assert expected in shown(answer), text
        assert answer["response_type"] == "ephemeral" and answer["visible_to"] == ALICE, text
    assert len(slack.history(GENERAL)) == posted  # nothing appeared in the channel
    assert slack.responses(BOB) == []


async def test_history_and_search_show_only_conversations_the_asker_is_in(
    slack: SlackEmulator, bot: None, tmp_path: Path
) -> None:
    public = await done(slack, tmp_path, await upload(slack, PHOTO, text="Pump bracket, indoors"))
    private = await done(slack, tmp_path, await upload(slack, PHOTO, text="Pump bracket, secret", channel=SECRET))
    assert public.board_ts is not None and private.board_ts is not None
    secret_link = f"/archives/{SECRET}/"
    for text in ("history", "search pump bracket"):
        alice, bob = await run(slack, ALICE, GENERAL, text), await run(slack, BOB, GENERAL, text)
        assert secret_link in shown(alice) and f"/archives/{GENERAL}/" in shown(alice)
        assert secret_link not in shown(bob) and f"/archives/{GENERAL}/" in shown(bob)
    assert "*2* consultations" in shown(await run(slack, ALICE, GENERAL, "stats"))
    assert "*1* consultation in" in shown(await run(slack, BOB, GENERAL, "stats"))


async def test_ask_posts_its_consultation_where_it_was_run_when_the_bot_is_there(
    slack: SlackEmulator, bot: None
) -> None:
    before = len(slack.history(GENERAL))
    answer = await run(slack, ALICE, GENERAL, "ask hinge for an outdoor gate, 2 kg, 200 a year")
    assert "in this conversation" in shown(answer) and answer["response_type"] == "ephemeral"
    await slack.wait_until(lambda: len(slack.history(GENERAL)) > before, WAIT_S, what="the asked root message")
    root = slack.history(GENERAL)[-1]
    assert "hinge for an outdoor gate" in root.text
    sent = Upload(GENERAL, root.ts)
    await wait_finished(slack, sent)


async def test_ask_goes_to_a_dm_where_the_bot_is_not_a_member(slack: SlackEmulator, bot: None) -> None:
    answer = await run(slack, BOB, NO_BOT, "ask hinge for an outdoor gate, 2 kg, 200 a year")
    assert "direct messages" in shown(answer) and answer["response_type"] == "ephemeral"
    assert slack.history(NO_BOT) == []
    dms = [c for c in slack.workspace.channels.values() if c.is_im and BOB in c.members]
    await slack.wait_until(lambda: any(slack.history(dm.id) for dm in dms), WAIT_S, what="the DM")
    (dm,) = [dm for dm in dms if slack.history(dm.id)]
    root = slack.history(dm.id)[-1]
    assert "hinge for an outdoor gate" in root.text


async def test_command_click_and_home_work_over_signed_http_too(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    async with running_bot(slack, claude, bot_settings(slack, tmp_path, socket=False)) as running:
        slack.set_http_target(signing_secret=SIGNING_SECRET, events_url=f"{running.base_url}/slack/events")
        answer = await run(slack, BOB, GENERAL, "help")
        assert "/matrec search" in shown(answer) and answer["response_type"] == "ephemeral"
        await slack.open_home(BOB)
        await slack.wait_until(lambda: slack.home_view(BOB) is not None, WAIT_S, what="the home view")
        async with await Store.open(f"sqlite:///{tmp_path / 'bot.db'}") as store:
            await store.mute(GENERAL, "1700000000.000100", ALICE)
            notice = slack.bot_message(
                GENERAL,
                "muted",
                bot_id="BBOT",
                user=slack.bot_user_id,
                thread_ts="1700000000.000100",
                blocks=muted_notice(GENERAL, "1700000000.000100").blocks,
            )
            await slack.click(BOB, GENERAL, str(notice["ts"]), actions.UNMUTE)
            await slack.wait_until(lambda: any(UNMUTED in r["text"] for r in slack.responses(BOB)), WAIT_S)
            assert not await store.muted(GENERAL, "1700000000.000100")
