"""Edits and deletions of an upload end to end: an edit offers a re-run with the new text, a deletion
cancels the consultation still running, over both emulators with the real bot and a real store."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import actions
from bot.blocks.board import RESTART_TIP
from bot.consultation.rerun import CANCELLED, EDIT_PREFIX, STILL_RUNNING
from bot.store import ConsultationKind, ConsultationStatus
from emulators.claude import ClaudeEmulator
from emulators.slack import SlackEmulator
from matrec.images import ACCEPTED_FORMATS_TEXT
from tests.bot_support import ALICE, GENERAL, WAIT_S, bot_replies, bot_settings, running_bot, upload, wait_finished
from tests.engine_support import jpeg_bytes
from tests.rerun_support import (
    branches_since,
    is_board,
    part_context,
    thread_records,
    wait_final_boards,
    wait_for_text,
    with_action,
)

PHOTO = jpeg_bytes(800, 600)
EDITED = "Wall bracket for a 20 kg pump next to a furnace door at 250 °C, 500 a year"
SLOW_S = 30.0  # longer than any test waits: a consultation this slow is still running when deleted


@pytest.fixture
async def bot(slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path) -> AsyncIterator[None]:
    async with running_bot(slack, claude, bot_settings(slack, tmp_path), max_retries=0):
        yield


async def test_editing_the_upload_offers_a_rerun_with_the_new_text(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: None, tmp_path: Path
) -> None:
    sent = await upload(slack, PHOTO)
    await wait_finished(slack, sent)

    await slack.deliver_event(slack.message_changed(GENERAL, sent.ts, text=EDITED))
    await slack.wait_until(lambda: bool(with_action(slack, sent, actions.RERUN_EDITED)), WAIT_S, what="the offer")
    assert len(branches_since(claude, 0)) == 6  # an edit alone spends nothing
    (offer,) = with_action(slack, sent, actions.RERUN_EDITED)
    start = len(claude.requests)
    await slack.click(ALICE, GENERAL, offer.ts, actions.RERUN_EDITED)
    _, second = await wait_final_boards(slack, sent, 2)

    branches = branches_since(claude, start)
    assert len(branches) == 6 and all("250 °C" in part_context(r) for r in branches)
    board = second.text + json.dumps(second.blocks, ensure_ascii=False)
    assert "furnace door" in board  # what changed: the edited description
    assert "Best: Ceramic* (was Metal)" in board  # a furnace's heat rules polymers out, ceramics in
    parent, child = await thread_records(tmp_path, sent)
    assert child.kind is ConsultationKind.RERUN and child.parent_id == parent.id
    assert child.context == EDITED  # the edited description replaces the old one
    assert child.requirements == [EDIT_PREFIX + EDITED]
    assert child.status is ConsultationStatus.DONE


async def test_the_same_text_again_offers_nothing(slack: SlackEmulator, claude: ClaudeEmulator, bot: None) -> None:
    sent = await upload(slack, PHOTO)
    await wait_finished(slack, sent)
    unchanged = slack.message_changed(GENERAL, sent.ts, text="Wall bracket for a 20 kg pump, indoors, 500 a year")
    await slack.wait_for_ack(await slack.deliver_event(unchanged), WAIT_S)
    await slack.deliver_event(slack.message_changed(GENERAL, sent.ts, text=EDITED))  # then a real edit
    await slack.wait_until(lambda: bool(with_action(slack, sent, actions.RERUN_EDITED)), WAIT_S, what="the offer")
    assert len(with_action(slack, sent, actions.RERUN_EDITED)) == 1


async def test_a_rerun_offered_while_the_upload_still_runs_waits_for_its_final_board(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: None
) -> None:
    claude.latencies["aggregate"] = 1.0  # still running when the offer is clicked
    sent = await upload(slack, PHOTO)
    await slack.wait_until(lambda: any(is_board(m) for m in bot_replies(slack, GENERAL, sent.ts)), WAIT_S)
    await slack.deliver_event(slack.message_changed(GENERAL, sent.ts, text=EDITED))
    await slack.wait_until(lambda: bool(with_action(slack, sent, actions.RERUN_EDITED)), WAIT_S, what="the offer")
    (offer,) = with_action(slack, sent, actions.RERUN_EDITED)

    await slack.click(ALICE, GENERAL, offer.ts, actions.RERUN_EDITED)
    await wait_for_text(slack, sent, STILL_RUNNING)
    await wait_finished(slack, sent)
    assert len(branches_since(claude, 0)) == 6


async def test_deleting_the_upload_cancels_its_running_consultation(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: None, tmp_path: Path
) -> None:
    claude.latency_s = SLOW_S
    sent = await upload(slack, PHOTO)
    await slack.wait_until(lambda: any(is_board(m) for m in bot_replies(slack, GENERAL, sent.ts)), WAIT_S)
    (board,) = [m for m in bot_replies(slack, GENERAL, sent.ts) if is_board(m)]

    await slack.deliver_event(slack.message_deleted(GENERAL, sent.ts))
    await slack.wait_until(lambda: CANCELLED in slack.message(GENERAL, board.ts).text, WAIT_S, what="cancelled")

    shown = json.dumps(slack.message(GENERAL, board.ts).blocks)
    assert CANCELLED in shown and RESTART_TIP in shown
    assert ACCEPTED_FORMATS_TEXT not in shown  # a cancellation is not a photo problem: no format tip
    (record,) = await thread_records(tmp_path, sent)
    assert record.status is ConsultationStatus.FAILED and record.error == CANCELLED
    assert not [r for r in claude.requests if r.kind.kind == "aggregate"]


async def test_a_stress_test_of_the_edited_rerun_keeps_the_edited_description(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: None, tmp_path: Path
) -> None:
    sent = await upload(slack, PHOTO)
    await wait_finished(slack, sent)
    await slack.deliver_event(slack.message_changed(GENERAL, sent.ts, text=EDITED))
    await slack.wait_until(lambda: bool(with_action(slack, sent, actions.RERUN_EDITED)), WAIT_S, what="the offer")
    (offer,) = with_action(slack, sent, actions.RERUN_EDITED)
    await slack.click(ALICE, GENERAL, offer.ts, actions.RERUN_EDITED)
    _, rerun_board = await wait_final_boards(slack, sent, 2)
    start = len(claude.requests)

    await slack.click(ALICE, GENERAL, rerun_board.ts, actions.STRESS)
    await wait_final_boards(slack, sent, 3)

    branches = branches_since(claude, start)
    assert len(branches) == 18 and all("250 °C" in part_context(r) for r in branches)
    _, rerun, stress = await thread_records(tmp_path, sent)
    assert stress.kind is ConsultationKind.STRESS and stress.parent_id == rerun.id
    assert stress.message_ts == f"{sent.ts}:rerun:1:rerun:1"
    assert stress.context == EDITED and stress.requirements == []  # the edit is already in its parent


async def test_deleting_the_upload_cancels_a_rerun_still_running_too(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: None, tmp_path: Path
) -> None:
    sent = await upload(slack, PHOTO)
    (board,) = await wait_final_boards(slack, sent, 1)
    claude.latency_s = SLOW_S
    await slack.click(ALICE, GENERAL, board.ts, actions.RERUN)
    await slack.wait_until(lambda: len([m for m in bot_replies(slack, GENERAL, sent.ts) if is_board(m)]) == 2, WAIT_S)
    rerun_board = [m for m in bot_replies(slack, GENERAL, sent.ts) if is_board(m)][-1]

    await slack.deliver_event(slack.message_deleted(GENERAL, sent.ts))
    await slack.wait_until(lambda: CANCELLED in slack.message(GENERAL, rerun_board.ts).text, WAIT_S, what="cancelled")

    upload_record, rerun = await thread_records(tmp_path, sent)
    assert upload_record.status is ConsultationStatus.DONE  # a final board keeps its answer
    assert rerun.status is ConsultationStatus.FAILED and rerun.error == CANCELLED
    assert CANCELLED not in slack.message(GENERAL, board.ts).text
