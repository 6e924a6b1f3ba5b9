"""Two real `python -m bot` processes on one PostgreSQL database, behind one round-robin request URL:
the spend cap is one cap for both (two uploads at once, one reaching each instance, with room for
one worst case: one runs, the other is told the budget is reached and Claude hears nothing of it),
and both instances report the same team-wide spend in `/metrics` and are ready."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bot.server import READY_PATH
from bot.spend import BUDGET_REACHED
from bot.store import Store, utc_now
from emulators.claude import ClaudeEmulator
from emulators.slack import SlackEmulator
from tests.bot_support import WAIT_S, bot_replies, rendered, upload
from tests.engine_support import jpeg_bytes
from tests.instances_support import behind_balancer
from tests.rerun_support import branches_since
from tests.store_support import fresh_database
from tests.test_spend_e2e import BRACKET, worst_case_usd

PHOTO = jpeg_bytes(800, 600)
TOKEN = "metrics-token-for-tests"
CHANNELS = ("C0DESIGN", "C0TOOLING")


async def _get(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        return response.status, await response.text()


def _gauge(text: str, name: str) -> float:
    return next(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


async def test_two_bot_processes_share_one_spend_cap_and_report_one_spend(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    for channel in CHANNELS:
        slack.add_channel(channel.lower(), channel_id=channel)
    cap_usd = worst_case_usd(claude)  # room for exactly one upload's worst case, team-wide
    extra = {"MATREC_DAILY_CAP_USD": str(cap_usd), "MATREC_METRICS_TOKEN": TOKEN}
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(fresh_database("postgres", tmp_path))
        balancer = await stack.enter_async_context(behind_balancer(slack, claude, url, tmp_path, extra))

        sent = await asyncio.gather(*(upload(slack, PHOTO, text=BRACKET, channel=c) for c in CHANNELS))

        def refused(index: int) -> bool:
            return any(BUDGET_REACHED in rendered(m) for m in bot_replies(slack, sent[index].channel, sent[index].ts))

        def ran(index: int) -> bool:
            return any("Best:" in rendered(m) for m in bot_replies(slack, sent[index].channel, sent[index].ts))

        await slack.wait_until(
            lambda: all(refused(i) or ran(i) for i in range(len(sent))), WAIT_S, "both uploads answered"
        )
        assert sorted(instance for instance, kind in balancer.served if kind == "event") == [0, 1]
        assert sorted((refused(i), ran(i)) for i in range(len(sent))) == [(False, True), (True, False)]
        assert len(branches_since(claude, 0)) == 6  # the refused one sent nothing

        async with await Store.open(url) as store:
            spent = await store.spent(utc_now().date())
        assert 0 < spent <= cap_usd
        for base in balancer.backends:
            status, text = await _get(f"{base}/metrics", TOKEN)
            assert status == 200
            assert _gauge(text, "matrec_budget_used_usd") == spent  # the shared ledger, not this process's own
            assert _gauge(text, "matrec_budget_cap_usd") == cap_usd
            assert (await _get(f"{base}{READY_PATH}"))[0] == 200
