"""Slack's rate-limit tiers, opt-in: each method limited per minute by its documented tier."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from emulators.slack import SlackEmulator
from emulators.slack_ratelimit import METHOD_TIERS, TIER_CALLS_PER_MINUTE

GENERAL = "C0GENERAL"
ALICE = "U1"


@pytest.fixture
def client(slack: SlackEmulator) -> AsyncWebClient:
    return AsyncWebClient(token=slack.bot_token, base_url=slack.api_url, retry_handlers=[])


async def status_of(call: Any) -> int:
    try:
        await call
    except SlackApiError as error:
        return int(error.response.status_code)
    return 200


def test_the_methods_the_bot_uses_have_their_documented_tiers() -> None:
    tiers = {m: METHOD_TIERS[m] for m in ("chat.startStream", "chat.stopStream", "chat.appendStream")}
    assert tiers == {"chat.startStream": 2, "chat.stopStream": 2, "chat.appendStream": 4}
    assert {METHOD_TIERS[m] for m in ("chat.update", "reactions.add")} == {3}
    assert {METHOD_TIERS[m] for m in ("views.publish", "views.open", "conversations.members", "users.info")} == {4}
    assert TIER_CALLS_PER_MINUTE == {1: 1, 2: 20, 3: 50, 4: 100}


async def test_without_tiers_a_burst_passes(slack: SlackEmulator, client: AsyncWebClient) -> None:
    ts = slack.user_message(GENERAL, ALICE, "q")["ts"]
    statuses = [await status_of(client.reactions_add(channel=GENERAL, timestamp=ts, name=f"e{n}")) for n in range(60)]
    assert set(statuses) == {200}


async def test_a_tier_2_method_refuses_the_21st_call_of_a_minute(slack: SlackEmulator, client: AsyncWebClient) -> None:
    slack.use_slack_rate_limits()
    slack.enable_streaming()
    ts = slack.user_message(GENERAL, ALICE, "q")["ts"]
    args = {"channel": GENERAL, "thread_ts": ts, "recipient_team_id": "T0TEST", "recipient_user_id": ALICE}
    statuses = [await status_of(client.chat_startStream(**args)) for _ in range(21)]
    assert statuses == [200] * 20 + [429]  # the refill (1 per 3 s) cannot matter within this burst
    assert slack.calls_to("chat.startStream")[-1].error == "ratelimited"
    assert slack.ratelimited_count["chat.startStream"] == 1


async def test_a_small_burst_shows_the_refill_rate_in_retry_after(slack: SlackEmulator, client: AsyncWebClient) -> None:
    slack.use_slack_rate_limits(burst=1)
    await client.views_publish(user_id=ALICE, view={"type": "home", "blocks": []})
    with pytest.raises(SlackApiError) as raised:
        await client.views_publish(user_id=ALICE, view={"type": "home", "blocks": []})
    assert raised.value.response.status_code == 429
    assert int(raised.value.response.headers["Retry-After"]) == 1  # Tier 4: 100 a minute refills within 1 s
