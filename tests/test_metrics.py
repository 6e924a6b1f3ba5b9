"""`/metrics` end to end: what a consultation, a follow-up and a Slack 429 leave there; where it is
served (token on PORT, a listener of its own, or nowhere); no user or channel in any label; the
one log line per consultation."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.consultation.ended import LOG_PREFIX
from bot.service import Running
from emulators.claude import ClaudeEmulator
from emulators.claude_faults import Fault
from emulators.slack import SlackEmulator
from tests.bot_support import ALICE, GENERAL, WAIT_S, bot_settings, running_bot, upload, wait_finished
from tests.engine_support import KEY, jpeg_bytes

TOKEN = "metrics-token-for-tests"
POLL_S = 0.05
BEARER = {"Authorization": f"Bearer {TOKEN}"}
SLACK_ID = re.compile(r"[UCDGWTBE][A-Z0-9]{1,}")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers or {}) as response:
        return response.status, await response.text()


def parse(text: str) -> Samples:
    """Every sample as (name, sorted labels) -> value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(value for (sample, keys), value in samples.items() if sample == name and wanted <= set(keys))


async def scrape(running: Running, name: str = "matrec_consultations_total", **labels: str) -> Samples:
    """The metrics once `name` (with `labels`) counts something: a consultation is counted after its
    final reaction, a follow-up after its answer lands."""
    url = f"{running.base_url}/metrics"
    async with asyncio.timeout(WAIT_S):
        while True:
            status, text = await get(url, BEARER)
            assert status == 200
            samples = parse(text)
            if total(samples, name, **labels) >= 1:
                return samples
            await asyncio.sleep(POLL_S)


async def test_a_finished_consultation_shows_in_the_metrics(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    settings = bot_settings(slack, tmp_path, MATREC_METRICS_TOKEN=TOKEN)
    async with running_bot(slack, claude, settings) as running:
        await wait_finished(slack, await upload(slack, jpeg_bytes()))
        samples = await scrape(running)
    assert total(samples, "matrec_consultations_total", outcome="done") == 1
    assert total(samples, "matrec_consultations_total") == 1
    assert total(samples, "matrec_branch_seconds_count") == 6
    classes = {dict(keys)["material"] for (name, keys) in samples if name == "matrec_branch_seconds_count"}
    assert classes == {"metal", "polymer", "ceramic", "composite", "elastomer", "wood"}
    assert total(samples, "matrec_tokens_total", type="input") > 0
    assert total(samples, "matrec_tokens_total", type="output") > 0
    assert total(samples, "matrec_estimated_cost_usd_total") > 0
    assert total(samples, "matrec_claude_call_failures_total") == 0
    assert total(samples, "matrec_consultations_in_queue", state="running") == 0
    assert total(samples, "matrec_consultations_in_queue", state="waiting") == 0


async def test_a_failed_branch_is_counted_by_kind(slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path) -> None:
    claude.fail(Fault.REFUSAL, match="wood", times=None)
    settings = bot_settings(slack, tmp_path, MATREC_METRICS_TOKEN=TOKEN)
    async with running_bot(slack, claude, settings) as running:
        await wait_finished(slack, await upload(slack, jpeg_bytes()))
        samples = await scrape(running)
    assert total(samples, "matrec_claude_call_failures_total", kind="refused") == 1
    assert total(samples, "matrec_consultations_total", outcome="done") == 1


async def test_metrics_need_the_bearer_token(slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path) -> None:
    settings = bot_settings(slack, tmp_path, MATREC_METRICS_TOKEN=TOKEN)
    async with running_bot(slack, claude, settings) as running:
        url = f"{running.base_url}/metrics"
        assert (await get(url))[0] == 401
        assert (await get(url, {"Authorization": "Bearer wrong"}))[0] == 401
        assert (await get(url, {"Authorization": TOKEN}))[0] == 401
        status, text = await get(url, BEARER)
    assert status == 200 and "matrec_consultations_total" in text


async def test_without_a_token_or_a_bind_address_there_is_no_metrics(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    async with running_bot(slack, claude, bot_settings(slack, tmp_path)) as running:
        assert running.metrics_url is None
        assert (await get(f"{running.base_url}/metrics", BEARER))[0] == 404
        assert (await get(f"{running.base_url}/healthz"))[0] == 200


async def test_a_bind_address_serves_metrics_on_a_listener_of_its_own(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    settings = bot_settings(slack, tmp_path, MATREC_METRICS_BIND="127.0.0.1:0", socket=False)
    async with running_bot(slack, claude, settings) as running:
        assert running.metrics_url is not None and running.metrics_url != running.base_url
        status, text = await get(f"{running.metrics_url}/metrics")
        assert status == 200 and "matrec_consultations_total" in text
        assert (await get(f"{running.base_url}/metrics"))[0] == 404
        assert (await get(f"{running.metrics_url}/healthz"))[0] == 404


async def test_a_bind_address_with_a_token_asks_for_the_token_there(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    settings = bot_settings(slack, tmp_path, MATREC_METRICS_BIND="127.0.0.1:0", MATREC_METRICS_TOKEN=TOKEN)
    async with running_bot(slack, claude, settings) as running:
        assert running.metrics_url is not None
        assert (await get(f"{running.metrics_url}/metrics"))[0] == 401
        assert (await get(f"{running.metrics_url}/metrics", BEARER))[0] == 200
        assert (await get(f"{running.base_url}/metrics", BEARER))[0] == 404


async def test_slack_429s_follow_ups_and_no_slack_ids_in_any_label(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    slack.ratelimit_next("reactions.add", 1, retry_after_s=0)
    settings = bot_settings(slack, tmp_path, MATREC_METRICS_TOKEN=TOKEN)
    async with running_bot(slack, claude, settings) as running:
        sent = await upload(slack, jpeg_bytes())
        await wait_finished(slack, sent)
        question = slack.user_message(GENERAL, ALICE, "Would aluminium do?", thread_ts=sent.ts)
        await slack.deliver_event(question)
        samples = await scrape(running, "matrec_followups_total")
    assert total(samples, "matrec_slack_rate_limited_total", method="reactions.add") == 1
    assert total(samples, "matrec_followups_total", outcome="answered") == 1
    values = {value for (_name, keys) in samples for (_label, value) in keys}
    assert values, "there are labelled samples"
    for value in values:
        assert not SLACK_ID.fullmatch(value), value
        assert value not in {GENERAL, ALICE, sent.ts}


async def test_one_structured_log_line_per_consultation_without_secrets(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.consultation.ended")
    settings = bot_settings(slack, tmp_path, MATREC_METRICS_TOKEN=TOKEN)
    async with running_bot(slack, claude, settings) as running:
        await wait_finished(slack, await upload(slack, jpeg_bytes()))
        await scrape(running)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(LOG_PREFIX)]
    assert len(lines) == 1
    fields = json.loads(lines[0].removeprefix(LOG_PREFIX))
    assert fields["channel"] == GENERAL and fields["user"] == ALICE
    assert fields["outcome"] == "done" and fields["best"] == "metal"
    assert fields["calls"] >= 7 and fields["tokens"]["input"] > 0 and fields["cost_usd"] > 0
    assert 0 < fields["seconds"] < WAIT_S and len(fields["id"]) == 32
    for secret in (slack.bot_token, slack.app_token, KEY, TOKEN):
        assert secret not in lines[0]


async def test_with_a_spend_cap_the_days_spend_shows_against_it(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    settings = bot_settings(slack, tmp_path, MATREC_METRICS_TOKEN=TOKEN, MATREC_DAILY_CAP_USD=10)
    async with running_bot(slack, claude, settings) as running:
        before = await get(f"{running.base_url}/metrics", BEARER)
        await wait_finished(slack, await upload(slack, jpeg_bytes()))
        samples = await scrape(running)
    assert total(parse(before[1]), "matrec_budget_used_usd") == 0
    assert total(samples, "matrec_budget_cap_usd") == 10
    assert (
        0 < total(samples, "matrec_budget_used_usd") == pytest.approx(total(samples, "matrec_estimated_cost_usd_total"))
    )


async def test_a_rejected_file_and_a_consultation_cancelled_at_shutdown_are_counted_so(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.consultation.ended")
    settings = bot_settings(slack, tmp_path, MATREC_METRICS_TOKEN=TOKEN, MATREC_SHUTDOWN_GRACE_S=0)
    async with running_bot(slack, claude, settings) as running:
        await wait_finished(slack, await upload(slack, b"not an image at all"))
        samples = await scrape(running, outcome="rejected")
        claude.latency_s = WAIT_S  # still thinking when the bot stops
        await upload(slack, jpeg_bytes())
        await claude.wait_for_requests(1)
    assert total(samples, "matrec_consultations_total", outcome="rejected") == 1
    outcomes = [
        json.loads(r.getMessage().removeprefix(LOG_PREFIX))["outcome"]
        for r in caplog.records
        if r.getMessage().startswith(LOG_PREFIX)
    ]
    assert outcomes == ["rejected", "cancelled"]
