"""The board's buttons end to end: feedback per person, details once, re-runs, and the thread rule."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot import actions
from bot.blocks import details
from bot.blocks.replies import muted_notice, rerun_offer
from bot.interactive import DETAILS_ALREADY, REFUSED, UNMUTED
from bot.store import Consultation, ConsultationKind, ConsultationStatus, Store, Turn, TurnStatus
from emulators.claude import ClaudeEmulator
from emulators.slack import SlackEmulator
from tests.bot_support import (
    ALICE,
    BOB,
    GENERAL,
    WAIT_S,
    Upload,
    bot_replies,
    bot_settings,
    rendered,
    running_bot,
    upload,
    wait_finished,
)
from tests.engine_support import jpeg_bytes

PHOTO = jpeg_bytes(640, 480)


@pytest.fixture
async def bot(slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path) -> AsyncIterator[None]:
    async with running_bot(slack, claude, bot_settings(slack, tmp_path), max_retries=0):
        yield


@pytest.fixture
async def store(tmp_path: Path, bot: None) -> AsyncIterator[Store]:
    """The bot's own database, read (and for setting up a mute, written) beside it."""
    async with await Store.open(f"sqlite:///{tmp_path / 'bot.db'}") as opened:
        yield opened


async def finished(slack: SlackEmulator, store: Store, sent: Upload) -> tuple[Consultation, str]:
    """The upload's stored consultation once final, and its board's ts."""
    await wait_finished(slack, sent)
    (record,) = await store.for_message(sent.channel, sent.ts)
    assert record.status is ConsultationStatus.DONE and record.board_ts is not None
    return record, record.board_ts


def board_text(slack: SlackEmulator, ts: str) -> str:
    return rendered(slack.message(GENERAL, ts))


def final_boards(slack: SlackEmulator, sent: Upload) -> int:
    """How many final boards (they carry the feedback buttons) the upload's thread has."""
    return sum(actions.HELPFUL in rendered(m) for m in bot_replies(slack, sent.channel, sent.ts))


def bot_post(slack: SlackEmulator, thread_ts: str, blocks: list[dict[str, Any]]) -> str:
    """A message of our bot's in a thread of #general, with these blocks (a notice, an offer, a copy); its ts."""
    posted = slack.bot_message(
        GENERAL, "notice", bot_id="BBOT", user=slack.bot_user_id, thread_ts=thread_ts, blocks=blocks
    )
    return str(posted["ts"])


def told(slack: SlackEmulator, user: str, text: str) -> bool:
    """Whether `user` got an ephemeral response containing `text`."""
    return any(text in r["text"] and r["response_type"] == "ephemeral" for r in slack.responses(user))


async def test_feedback_is_kept_per_person_a_change_replaces_it_and_the_board_counts_the_team(
    slack: SlackEmulator, store: Store
) -> None:
    record, board = await finished(slack, store, await upload(slack, PHOTO))
    await slack.click(ALICE, GENERAL, board, actions.HELPFUL)
    await slack.click(ALICE, GENERAL, board, actions.CHOSE, selected=f"{record.id}:polymer")
    await slack.click(BOB, GENERAL, board, actions.CHOSE, selected=f"{record.id}:polymer")
    await slack.wait_until(lambda: "Polymer ×2" in board_text(slack, board), WAIT_S, what="two choices")
    assert "1 found it helpful" in board_text(slack, board)
    await slack.click(ALICE, GENERAL, board, actions.CHOSE, selected=f"{record.id}:metal")
    await slack.click(ALICE, GENERAL, board, actions.NOT_HELPFUL)
    await slack.wait_until(
        lambda: "1 found it not helpful" in board_text(slack, board), WAIT_S, what="the changed rating"
    )
    text = board_text(slack, board)
    assert "Polymer ×1" in text and "Metal ×1" in text and "Polymer ×2" not in text
    feedback = {f.user_id: (f.rating, f.chosen) for f in await store.feedback(record.id)}
    assert feedback == {ALICE: ("not_helpful", "metal"), BOB: (None, "polymer")}


async def test_a_button_naming_another_threads_consultation_is_refused(slack: SlackEmulator, store: Store) -> None:
    first, first_board = await finished(slack, store, await upload(slack, PHOTO))
    other = await upload(slack, PHOTO, text="Gear for a garden tool")
    await finished(slack, store, other)
    # A copy of the first board's buttons turns up in the other thread (a stale client, a forged payload).
    copy = bot_post(slack, other.ts, slack.message(GENERAL, first_board).blocks or [])
    await slack.click(BOB, GENERAL, copy, actions.HELPFUL)
    await slack.click(BOB, GENERAL, copy, actions.RERUN)
    await slack.wait_until(lambda: len([r for r in slack.responses(BOB) if REFUSED in r["text"]]) == 2, WAIT_S)
    assert await store.feedback(first.id) == []
    assert len(await store.for_thread(GENERAL, first.thread_ts)) == 1
    assert len(await store.for_thread(GENERAL, other.ts)) == 1
    assert all(r["response_type"] == "ephemeral" for r in slack.responses(BOB))


async def test_details_go_into_the_thread_once_and_a_second_click_points_at_them(
    slack: SlackEmulator, store: Store
) -> None:
    sent = await upload(slack, PHOTO)
    record, board = await finished(slack, store, sent)
    assert record.recommendation is not None
    expected = [m.text for m in details(record.recommendation)]
    before = len(bot_replies(slack, GENERAL, sent.ts))
    await slack.click(ALICE, GENERAL, board, actions.DETAILS)
    wanted = before + len(expected)
    await slack.wait_until(lambda: len(bot_replies(slack, GENERAL, sent.ts)) == wanted, WAIT_S, what="the details")
    assert [m.text for m in bot_replies(slack, GENERAL, sent.ts)[before:]] == expected
    await slack.click(BOB, GENERAL, board, actions.DETAILS)
    await slack.wait_until(lambda: told(slack, BOB, DETAILS_ALREADY), WAIT_S, what="the pointer")
    assert len(bot_replies(slack, GENERAL, sent.ts)) == wanted


async def test_the_rerun_button_makes_a_second_board_in_the_same_thread(slack: SlackEmulator, store: Store) -> None:
    sent = await upload(slack, PHOTO)
    record, board = await finished(slack, store, sent)
    await slack.click(BOB, GENERAL, board, actions.RERUN)

    await slack.wait_until(lambda: final_boards(slack, sent) == 2, WAIT_S, what="the re-run's final board")
    (child,) = await store.children(record.id)
    assert child.kind is ConsultationKind.RERUN and child.user_id == BOB
    assert child.thread_ts == sent.ts


async def test_unmute_acts_in_its_own_thread_only(slack: SlackEmulator, store: Store) -> None:
    sent = await upload(slack, PHOTO)
    await finished(slack, store, sent)
    other = await upload(slack, PHOTO, text="Gear for a garden tool")
    await finished(slack, store, other)
    await store.mute(GENERAL, sent.ts, ALICE)
    notice = muted_notice(GENERAL, sent.ts).blocks
    await slack.click(BOB, GENERAL, bot_post(slack, other.ts, notice), actions.UNMUTE)
    await slack.wait_until(lambda: told(slack, BOB, REFUSED), WAIT_S, what="the refusal")
    assert await store.muted(GENERAL, sent.ts)
    await slack.click(BOB, GENERAL, bot_post(slack, sent.ts, notice), actions.UNMUTE)
    await slack.wait_until(lambda: told(slack, BOB, UNMUTED), WAIT_S, what="the unmute")
    assert not await store.muted(GENERAL, sent.ts)


@pytest.mark.parametrize("group", [False, True], ids=["dm", "group-dm"])
async def test_analyse_this_description_runs_the_dm_text_in_its_thread_and_only_on_request(
    slack: SlackEmulator, claude: ClaudeEmulator, store: Store, group: bool
) -> None:
    dm = slack.add_mpim([ALICE, BOB]) if group else slack.add_im(ALICE)
    said = slack.user_message(dm.id, ALICE, "Hinge for an outdoor gate, 2 kg, 200 a year")
    await slack.deliver_event(said)
    ts = str(said["ts"])

    def help_reply() -> str | None:
        return next((m.ts for m in bot_replies(slack, dm.id, ts) if actions.ANALYSE_TEXT in rendered(m)), None)

    await slack.wait_until(lambda: help_reply() is not None, WAIT_S, what="the help reply")
    assert not any(r.kind.kind == "branch" for r in claude.requests)  # no spend before the click
    clicker = BOB if group else ALICE
    reply = help_reply()
    assert reply is not None
    await slack.click(clicker, dm.id, reply, actions.ANALYSE_TEXT)
    await slack.wait_until(
        lambda: any(actions.HELPFUL in rendered(m) for m in bot_replies(slack, dm.id, ts)), WAIT_S, what="the board"
    )
    (record,) = await store.for_thread(dm.id, ts)
    assert "outdoor gate" in record.context and record.user_id == clicker
    assert sum(r.kind.kind == "branch" for r in claude.requests) == 6


async def test_a_follow_ups_rerun_offer_acts_in_its_own_thread_only(slack: SlackEmulator, store: Store) -> None:
    sent = await upload(slack, PHOTO)
    record, _ = await finished(slack, store, sent)
    other = await upload(slack, PHOTO, text="Gear for a garden tool")
    await finished(slack, store, other)
    turn = Turn(
        consultation_id=record.id,
        channel=GENERAL,
        thread_ts=sent.ts,
        message_ts=sent.ts + "1",
        user_id=BOB,
        question="and at 250 °C?",
        answer="Then polymer is out.",
        status=TurnStatus.ANSWERED,
        changes=["operates at 250 °C"],
    )
    await store.add_turn(turn)
    offer = rerun_offer(turn.id, turn.changes).blocks
    await slack.click(BOB, GENERAL, bot_post(slack, other.ts, offer), actions.RERUN_WITH)
    await slack.wait_until(lambda: told(slack, BOB, REFUSED), WAIT_S, what="the refusal")
    assert await store.children(record.id) == []
    await slack.click(BOB, GENERAL, bot_post(slack, sent.ts, offer), actions.RERUN_WITH)
    await slack.wait_until(lambda: final_boards(slack, sent) == 2, WAIT_S, what="the re-run's final board")
    (child,) = await store.children(record.id)
    assert child.requirements == ["operates at 250 °C"] and "250 °C" in child.context
