"""The spend cap end to end, over both emulators with the real bot and store: past the day's cap an
upload or a follow-up gets the budget message and Claude hears nothing; the 80% warning goes out
once; a cap with an unpriced model stops the start, a price override lets it start."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.service import StartupError
from bot.spend import BUDGET_REACHED, WorstCase
from bot.store import Store, TurnStatus, utc_now
from emulators.claude import ClaudeEmulator, Fault
from emulators.slack import SlackEmulator
from matrec.choices import Mode
from matrec.models import PriceOverride
from tests.bot_support import (
    GENERAL,
    WAIT_S,
    bot_replies,
    bot_settings,
    rendered,
    running_bot,
    upload,
    wait_boards,
    wait_finished,
)
from tests.engine_support import engine_settings, jpeg_bytes

PHOTO = jpeg_bytes(800, 600)
BRACKET = "Wall bracket for a 20 kg pump, indoors, 500 a year"
ALERTS = "C0BUDGET"
UNPRICED_MODEL = "claude-unlisted-9"
ALERT_CAP_SHARE = 0.9  # one consultation's worst case is this share of the cap: past 80 % at once


def worst_case_usd(claude: ClaudeEmulator) -> float:
    """One upload's worst case, as the bot reckons it for the bracket photo."""
    settings = engine_settings(claude)
    assert settings.price_table is not None
    return WorstCase(settings, settings.price_table).consultation_usd(Mode.PARALLEL, photos=1, context=BRACKET)


def database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'bot.db'}"


def budget_replies(slack: SlackEmulator, channel: str, ts: str) -> list[str]:
    return [rendered(m) for m in bot_replies(slack, channel, ts) if BUDGET_REACHED in rendered(m)]


async def test_past_the_daily_cap_the_next_upload_gets_the_budget_message_and_claude_no_request(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    cap_usd = worst_case_usd(claude)  # room for exactly one worst case
    async with running_bot(slack, claude, bot_settings(slack, tmp_path, MATREC_DAILY_CAP_USD=cap_usd)):
        first = await upload(slack, PHOTO, text=BRACKET)
        await wait_finished(slack, first)
        assert "white_check_mark" in slack.reactions(GENERAL, first.ts)
        requests = len(claude.requests)

        second = await upload(slack, PHOTO, text=BRACKET)
        boards = await wait_boards(slack, second)

        assert len(claude.requests) == requests
        assert any(BUDGET_REACHED in rendered(m) for m in boards)
        assert "warning" in slack.reactions(GENERAL, second.ts)
    async with await Store.open(database(tmp_path)) as store:
        spent = await store.spent(utc_now().date())
        assert 0 < spent <= cap_usd  # the first upload's actual cost, its reservation settled
        assert await store.spent(utc_now().date(), GENERAL) == pytest.approx(spent)


async def test_a_channel_past_its_cap_is_refused_while_another_channel_goes_on(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    other = slack.add_channel("design", channel_id="C0DESIGN").id
    settings = bot_settings(slack, tmp_path, MATREC_CHANNEL_DAILY_CAP_USD=worst_case_usd(claude))
    async with running_bot(slack, claude, settings):
        await wait_finished(slack, await upload(slack, PHOTO, text=BRACKET))
        refused = await upload(slack, PHOTO, text=BRACKET)
        assert any(BUDGET_REACHED in rendered(m) for m in await wait_boards(slack, refused))

        elsewhere = await upload(slack, PHOTO, text=BRACKET, channel=other)
        await wait_finished(slack, elsewhere)

        assert "white_check_mark" in slack.reactions(other, elsewhere.ts)


async def test_a_consultation_that_fails_gives_its_reservation_back(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    cap_usd = worst_case_usd(claude)
    settings = bot_settings(slack, tmp_path, MATREC_DAILY_CAP_USD=cap_usd)
    async with running_bot(slack, claude, settings, max_retries=0):
        claude.fail(Fault.SERVER_ERROR, match="branch", times=None)
        failed = await upload(slack, PHOTO, text=BRACKET)
        await wait_finished(slack, failed)
        assert "warning" in slack.reactions(GENERAL, failed.ts)
        claude.clear_faults()

        answered = await upload(slack, PHOTO, text=BRACKET)
        await wait_finished(slack, answered)

        assert "white_check_mark" in slack.reactions(GENERAL, answered.ts)


async def test_a_follow_up_past_the_cap_gets_the_budget_message_and_claude_no_request(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    cap_usd = 2 * worst_case_usd(claude)
    async with running_bot(slack, claude, bot_settings(slack, tmp_path, MATREC_DAILY_CAP_USD=cap_usd)) as bot:
        sent = await upload(slack, PHOTO, text=BRACKET)
        await wait_finished(slack, sent)
        async with await Store.open(database(tmp_path)) as store:  # another instance spends the rest of the day
            today = utc_now().date()
            rest_usd = cap_usd - await store.spent(today)
            assert await store.reserve(today, "C0ELSEWHERE", rest_usd, cap_day=None, cap_channel=None) is not None
        requests = len(claude.requests)

        question = slack.user_message(GENERAL, "U1", "Why metal and not a polymer?", thread_ts=sent.ts)
        await slack.deliver_event(question)
        await slack.wait_until(lambda: bool(budget_replies(slack, GENERAL, sent.ts)), WAIT_S, what="the budget reply")
        assert bot.followups is not None
        await bot.followups.drain()

        assert len(claude.requests) == requests
        assert len(budget_replies(slack, GENERAL, sent.ts)) == 1
    async with await Store.open(database(tmp_path)) as store:
        record = await store.latest_in_thread(GENERAL, sent.ts)
        assert record is not None
        assert [t.status for t in await store.turns(record.id)] == [TurnStatus.SKIPPED]


async def test_the_80_percent_warning_goes_to_the_alert_channel_once_a_day(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    slack.add_channel("matrec-budget", channel_id=ALERTS)
    cap_usd = worst_case_usd(claude) / ALERT_CAP_SHARE
    settings = bot_settings(slack, tmp_path, MATREC_DAILY_CAP_USD=cap_usd, MATREC_BUDGET_ALERT_CHANNEL=ALERTS)
    async with running_bot(slack, claude, settings):
        for _ in range(2):  # both past 80 % once reserved, both within the cap
            sent = await upload(slack, PHOTO, text=BRACKET)
            await wait_finished(slack, sent)
            assert "white_check_mark" in slack.reactions(GENERAL, sent.ts)

    (warning,) = [m for m in slack.history(ALERTS) if m.bot_id]
    assert "budget" in warning.text and "00:00 UTC" in warning.text


async def test_a_cap_with_a_model_that_has_no_price_stops_the_start_naming_the_variables(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    settings = bot_settings(slack, tmp_path, MATREC_DAILY_CAP_USD=5.0)
    with pytest.raises(StartupError, match=r"MATREC_DAILY_CAP_USD.*MATREC_PRICES__INPUT_USD_PER_MTOK") as raised:
        async with running_bot(slack, claude, settings, model=UNPRICED_MODEL):
            pass
    assert "\n" not in str(raised.value)


async def test_a_cap_with_an_unlisted_model_starts_when_a_price_override_is_given(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    settings = bot_settings(slack, tmp_path, MATREC_DAILY_CAP_USD=5.0)
    prices = PriceOverride(input_usd_per_mtok=1.0, output_usd_per_mtok=5.0)
    async with running_bot(slack, claude, settings, model=UNPRICED_MODEL, prices=prices) as bot:
        assert bot.bot_user_id
