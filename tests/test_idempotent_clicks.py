"""Buttons and commands act exactly once: a double click, two people pressing at once and a repeated
`/matrec ask` start one run, through the real bot over both emulators; a press on a newer board is
a new action. The idempotency key lives in the store, so two Store objects racing (SQLite and
PostgreSQL) claim it once; two bots on one PostgreSQL database are in test_idempotent_instances."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import actions
from bot.interactive import ALREADY_DONE, ALREADY_STARTED, idempotency_key
from bot.service import Running
from bot.store import ConsultationKind, Store
from emulators.claude import ClaudeEmulator
from emulators.slack import SlackEmulator
from tests.bot_support import ALICE, BOB, GENERAL, WAIT_S, bot_settings, running_bot, upload, wait_finished
from tests.engine_support import jpeg_bytes
from tests.rerun_support import branches_since, charts, thread_records, wait_final_boards, with_action
from tests.store_support import Opener, clock_fixture, opener_fixture, store_fixture, url_fixture  # noqa: F401

PHOTO = jpeg_bytes(800, 600)
RACERS = 8  # Store objects pressing one key at once


@pytest.fixture
async def bot(slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path) -> AsyncIterator[Running]:
    async with running_bot(slack, claude, bot_settings(slack, tmp_path), max_retries=0) as running:
        yield running


async def _told(slack: SlackEmulator, user: str, text: str) -> None:
    """Wait for a note only `user` sees that says `text`."""
    await slack.wait_until(lambda: any(text in r["text"] for r in slack.responses(user)), WAIT_S, what=repr(text))


async def _settled(bot: Running) -> None:
    """Every task the clicks started has ended, so nothing more can appear."""
    async with asyncio.timeout(WAIT_S):
        await bot.consultant.drain()


async def test_a_double_click_on_rerun_makes_one_rerun(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: Running, tmp_path: Path
) -> None:
    sent = await upload(slack, PHOTO)
    await wait_finished(slack, sent)
    (board,) = with_action(slack, sent, actions.RERUN)
    start = len(claude.requests)

    await slack.click(ALICE, GENERAL, board.ts, actions.RERUN)
    await slack.click(ALICE, GENERAL, board.ts, actions.RERUN)
    await _told(slack, ALICE, ALREADY_STARTED)
    await wait_final_boards(slack, sent, 2)
    await _settled(bot)

    assert len(branches_since(claude, start)) == 6
    assert charts(slack, sent) == 2
    assert [r.kind for r in await thread_records(tmp_path, sent)] == [ConsultationKind.UPLOAD, ConsultationKind.RERUN]


async def test_two_people_pressing_rerun_at_the_same_moment_make_one_rerun(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: Running, tmp_path: Path
) -> None:
    sent = await upload(slack, PHOTO)
    await wait_finished(slack, sent)
    (board,) = with_action(slack, sent, actions.RERUN)
    start = len(claude.requests)

    await asyncio.gather(
        slack.click(ALICE, GENERAL, board.ts, actions.RERUN), slack.click(BOB, GENERAL, board.ts, actions.RERUN)
    )
    await wait_final_boards(slack, sent, 2)
    await _settled(bot)

    assert len(branches_since(claude, start)) == 6
    assert charts(slack, sent) == 2
    assert len(await thread_records(tmp_path, sent)) == 2
    told = [r for user in (ALICE, BOB) for r in slack.responses(user) if r["text"] in (ALREADY_STARTED, ALREADY_DONE)]
    assert len(told) == 1 and told[0]["response_type"] == "ephemeral"


async def test_rerun_on_the_new_board_starts_another_but_the_old_board_is_done(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: Running, tmp_path: Path
) -> None:
    sent = await upload(slack, PHOTO)
    await wait_finished(slack, sent)
    (first,) = with_action(slack, sent, actions.RERUN)
    await slack.click(ALICE, GENERAL, first.ts, actions.RERUN)
    _, second = await wait_final_boards(slack, sent, 2)
    await _settled(bot)
    start = len(claude.requests)

    await slack.click(BOB, GENERAL, second.ts, actions.RERUN)  # the new board: a new version
    await wait_final_boards(slack, sent, 3)
    await slack.click(BOB, GENERAL, first.ts, actions.RERUN)  # the board already re-run
    await _told(slack, BOB, ALREADY_DONE)
    await _settled(bot)

    assert len(branches_since(claude, start)) == 6
    upload_record, rerun, again = await thread_records(tmp_path, sent)
    assert rerun.parent_id == upload_record.id and again.parent_id == rerun.id


async def test_a_slash_command_delivered_twice_starts_one_consultation(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: Running, tmp_path: Path
) -> None:
    envelope = await slack.slash_command(ALICE, GENERAL, "ask hinge for an outdoor gate, 2 kg, 200 a year")
    payload = slack.deliveries[envelope].payload  # the same trigger_id, as a redelivery would carry
    await slack.socket.send_envelope(
        "slash_commands", payload, retry_attempt=0, retry_reason="", accepts_response_payload=True, timeout_s=WAIT_S
    )
    await slack.wait_until(lambda: len(slack.responses(ALICE)) >= 2, WAIT_S, what="both answers")
    await _settled(bot)

    async with await Store.open(f"sqlite:///{tmp_path / 'bot.db'}") as store:
        assert len(await store.history([GENERAL], limit=10)) == 1
    assert len([r for r in claude.requests if r.kind.kind == "branch"]) == 6


async def test_of_stores_racing_for_one_key_exactly_one_claims_it(store: Store, opener: Opener) -> None:
    others = [await opener() for _ in range(RACERS - 1)]
    key = idempotency_key("c1", actions.RERUN, "1700000000.000100")
    try:
        won = await asyncio.gather(*(s.claim(None, GENERAL, key) for s in [store, *others]))
        later = await others[0].claim(None, GENERAL, idempotency_key("c1", actions.RERUN, "1700000000.000200"))
    finally:
        for other in others:
            await other.close()
    assert sorted(won) == [False] * (RACERS - 1) + [True]
    assert later  # another board version is another key


async def test_two_presses_of_stress_test_at_once_make_one_stress_test(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: Running, tmp_path: Path
) -> None:
    sent = await upload(slack, PHOTO)
    await wait_finished(slack, sent)
    (board,) = with_action(slack, sent, actions.STRESS)
    start = len(claude.requests)

    await asyncio.gather(
        slack.click(ALICE, GENERAL, board.ts, actions.STRESS), slack.click(BOB, GENERAL, board.ts, actions.STRESS)
    )
    await wait_final_boards(slack, sent, 2)
    await _settled(bot)

    assert len(branches_since(claude, start)) == 18  # six classes under three conditions, once
    assert [r.kind for r in await thread_records(tmp_path, sent)] == [ConsultationKind.UPLOAD, ConsultationKind.STRESS]


async def test_two_presses_of_a_follow_ups_rerun_offer_at_once_make_one_rerun(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: Running, tmp_path: Path
) -> None:
    sent = await upload(slack, PHOTO)
    await wait_finished(slack, sent)
    await slack.deliver_event(slack.user_message(GENERAL, ALICE, "What if it runs at 250 °C?", thread_ts=sent.ts))
    await slack.wait_until(lambda: bool(with_action(slack, sent, actions.RERUN_WITH)), WAIT_S, what="the offer")
    (offer,) = with_action(slack, sent, actions.RERUN_WITH)
    assert bot.followups is not None
    async with asyncio.timeout(WAIT_S):
        await bot.followups.drain()  # the answer is recorded with the changes it proposed
    start = len(claude.requests)

    await asyncio.gather(
        slack.click(ALICE, GENERAL, offer.ts, actions.RERUN_WITH),
        slack.click(BOB, GENERAL, offer.ts, actions.RERUN_WITH),
    )
    await wait_final_boards(slack, sent, 2)
    await _settled(bot)

    assert len(branches_since(claude, start)) == 6
    _, rerun = await thread_records(tmp_path, sent)
    assert any("250" in requirement for requirement in rerun.requirements)
