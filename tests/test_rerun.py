"""Re-runs end to end: a second board in the same thread that says what changed, stress tests, splits,
reply photos and double clicks, over both emulators with the real bot and a real store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import actions
from bot.consultation.rerun import ALREADY_SPLIT, REQUIREMENT_PREFIX
from bot.interactive import ALREADY_STARTED
from bot.service import Running
from bot.store import ConsultationKind, ConsultationStatus
from emulators.claude import ClaudeEmulator
from emulators.slack import SlackEmulator
from matrec.materials import MaterialClass
from tests.bot_support import ALICE, GENERAL, WAIT_S, Upload, bot_settings, rendered, running_bot, upload, wait_finished
from tests.engine_support import jpeg_bytes
from tests.rerun_support import (
    branches_since,
    part_context,
    thread_records,
    wait_final_boards,
    wait_for_text,
    with_action,
)

PHOTO = jpeg_bytes(800, 600)
OTHER_ANGLE = jpeg_bytes(640, 480)
BOB = "U2"


@pytest.fixture
async def bot(slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path) -> AsyncIterator[Running]:
    async with running_bot(slack, claude, bot_settings(slack, tmp_path), max_retries=0) as running:
        yield running


async def _final_upload(slack: SlackEmulator, content: bytes = PHOTO) -> Upload:
    sent = await upload(slack, content)
    await wait_finished(slack, sent)
    return sent


async def test_a_rerun_after_a_follow_up_makes_a_second_board_that_says_what_changed(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: Running, tmp_path: Path
) -> None:
    sent = await _final_upload(slack)
    question = slack.user_message(GENERAL, ALICE, "What if it runs at 250 °C?", thread_ts=sent.ts)
    await slack.deliver_event(question)
    await slack.wait_until(lambda: bool(with_action(slack, sent, actions.RERUN_WITH)), what="the re-run offer")
    (offer,) = with_action(slack, sent, actions.RERUN_WITH)
    assert bot.followups is not None
    async with asyncio.timeout(WAIT_S):
        await bot.followups.drain()  # the answer is recorded with the changes it proposed
    start = len(claude.requests)

    await slack.click(ALICE, GENERAL, offer.ts, actions.RERUN_WITH)
    first, second = await wait_final_boards(slack, sent, 2)

    assert "250" in rendered(second) and "250" not in rendered(first)  # the new board says what changed
    assert "Best: Metal* (kept)" in rendered(second) and "(−3)" in rendered(second)  # polymer's delta
    branches = branches_since(claude, start)
    assert len(branches) == 6 and all("250" in part_context(r) for r in branches)
    parent, child = await thread_records(tmp_path, sent)
    assert child.kind is ConsultationKind.RERUN and child.parent_id == parent.id
    assert child.message_ts == f"{sent.ts}:rerun:1" and child.thread_ts == sent.ts
    assert any("250" in r for r in child.requirements)
    assert child.context.startswith(parent.context) and REQUIREMENT_PREFIX in child.context
    assert child.status is ConsultationStatus.DONE and child.board_ts == second.ts
    assert parent.recommendation is not None and child.recommendation is not None
    # The emulated polymer specialist marks polymers down from 200 °C, ceramics up: the deltas are real.
    assert child.recommendation.scores[MaterialClass.POLYMER] < parent.recommendation.scores[MaterialClass.POLYMER]  # type: ignore[operator]
    assert child.recommendation.scores[MaterialClass.CERAMIC] > parent.recommendation.scores[MaterialClass.CERAMIC]  # type: ignore[operator]

    start = len(claude.requests)  # a stress test of the re-run keeps the requirement the re-run added
    await slack.click(ALICE, GENERAL, second.ts, actions.STRESS)
    await wait_final_boards(slack, sent, 3)
    assert all("250" in part_context(r) for r in branches_since(claude, start))
    *_, stress = await thread_records(tmp_path, sent)
    assert stress.parent_id == child.id and stress.context == child.context and stress.requirements == []


async def test_a_stress_test_runs_six_classes_under_three_conditions(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: Running, tmp_path: Path
) -> None:
    sent = await _final_upload(slack)
    (board,) = with_action(slack, sent, actions.STRESS)
    start = len(claude.requests)

    await slack.click(ALICE, GENERAL, board.ts, actions.STRESS)
    await wait_final_boards(slack, sent, 2)

    branches = branches_since(claude, start)
    assert len(branches) == 18
    assert len({(r.kind.material, r.kind.condition) for r in branches}) == 18
    assert len({r.kind.condition for r in branches}) == 3
    _, child = await thread_records(tmp_path, sent)
    assert child.kind is ConsultationKind.STRESS and child.status is ConsultationStatus.DONE
    assert child.recommendation is not None and child.recommendation.mode.value == "nested"


async def test_the_split_button_on_three_photos_makes_three_boards_of_one_photo_each(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: Running, tmp_path: Path
) -> None:
    files = [
        slack.add_file(jpeg_bytes(800 - 40 * i, 600), f"angle-{i}.jpg", "image/jpeg", "jpg", channel=GENERAL)
        for i in range(3)
    ]
    event = slack.upload_message(GENERAL, ALICE, "Three brackets from the pump skid, indoors, 500 a year", files)
    await slack.deliver_event(event)
    sent = Upload(GENERAL, str(event["ts"]))
    await wait_finished(slack, sent)
    assert all(len(r.image_sizes) == 3 for r in branches_since(claude, 0))
    (board,) = with_action(slack, sent, actions.SPLIT)
    start = len(claude.requests)

    await slack.click(ALICE, GENERAL, board.ts, actions.SPLIT)
    boards = await wait_final_boards(slack, sent, 4)

    assert len(boards) == 4
    branches = branches_since(claude, start)
    assert len(branches) == 18 and all(len(r.image_sizes) == 1 for r in branches)
    parent, *parts = await thread_records(tmp_path, sent)
    assert [p.file_name for p in parts] == ["angle-0.jpg", "angle-1.jpg", "angle-2.jpg"]
    assert all(p.parent_id == parent.id and p.kind is ConsultationKind.UPLOAD for p in parts)
    assert all(p.status is ConsultationStatus.DONE for p in parts)

    await slack.click(BOB, GENERAL, board.ts, actions.SPLIT)  # a second press splits nothing more
    await wait_for_text(slack, sent, ALREADY_SPLIT)
    assert len(await thread_records(tmp_path, sent)) == 4


async def test_photos_added_as_a_reply_join_the_next_rerun(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: Running, tmp_path: Path
) -> None:
    sent = await _final_upload(slack)
    file = slack.add_file(OTHER_ANGLE, "underside.jpg", "image/jpeg", "jpg", channel=GENERAL)
    await slack.deliver_event(slack.upload_message(GENERAL, ALICE, "the underside", [file], thread_ts=sent.ts))
    offer = await wait_for_text(slack, sent, "join the next re-run")
    assert actions.RERUN in {e["action_id"] for b in offer.blocks or [] for e in b.get("elements", [])}
    assert len(branches_since(claude, 0)) == 6  # a reply photo alone starts nothing
    start = len(claude.requests)

    await slack.click(ALICE, GENERAL, offer.ts, actions.RERUN)
    await wait_final_boards(slack, sent, 2)

    branches = branches_since(claude, start)
    assert len(branches) == 6 and all(len(r.image_sizes) == 2 for r in branches)
    records = await thread_records(tmp_path, sent)
    assert len(records) == 2  # the reply photo did not start a consultation of its own
    # Taken by this re-run: the next one starts from the re-run's own two photos, not three.
    (board,) = [b for b in with_action(slack, sent, actions.STRESS) if b.ts == records[1].board_ts]
    start = len(claude.requests)
    await slack.click(ALICE, GENERAL, board.ts, actions.STRESS)
    await wait_final_boards(slack, sent, 3)
    assert all(len(r.image_sizes) == 2 for r in branches_since(claude, start))


async def test_a_second_click_while_the_rerun_runs_starts_nothing_more(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: Running, tmp_path: Path
) -> None:
    sent = await _final_upload(slack)
    (board,) = with_action(slack, sent, actions.RERUN)
    claude.latency_s = 1.0  # the re-run is still running when the second click arrives
    start = len(claude.requests)

    await slack.click(ALICE, GENERAL, board.ts, actions.RERUN)
    await slack.click(BOB, GENERAL, board.ts, actions.RERUN)

    def told(user: str) -> bool:
        return any(ALREADY_STARTED in r["text"] for r in slack.responses(user))

    # Bolt acks each click and handles both at once: either may claim the re-run first.
    await slack.wait_until(lambda: told(ALICE) or told(BOB), WAIT_S)
    await wait_final_boards(slack, sent, 2)
    assert told(ALICE) != told(BOB)

    assert len(branches_since(claude, start)) == 6
    assert [r.kind for r in await thread_records(tmp_path, sent)] == [ConsultationKind.UPLOAD, ConsultationKind.RERUN]
