"""Chat streaming as slack_sdk's chat_stream drives it: recipients in channels, the 12,000-character
chunk, feature_disabled, idle expiry, buttons at the stop, and chat.update as the recovery path."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from emulators.slack import SlackEmulator

GENERAL = "C0GENERAL"
ALICE, BOB = "U1", "U2"
TEAM = "T0TEST"
BUTTONS = [
    {
        "type": "actions",
        "elements": [
            {"type": "button", "action_id": "matrec_rerun_with", "text": {"type": "plain_text", "text": "Re-run"}}
        ],
    }
]


@pytest.fixture
def client(slack: SlackEmulator) -> AsyncWebClient:
    slack.enable_streaming()
    return AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)


async def error_of(call: Any) -> str:
    with pytest.raises(SlackApiError) as raised:
        await call
    return str(raised.value.response["error"])


async def test_a_stream_reads_as_streaming_then_stopped_with_its_text_and_appends(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    question = slack.user_message(GENERAL, ALICE, "what about 150 °C?")["ts"]
    streamer = await client.chat_stream(
        channel=GENERAL, thread_ts=question, buffer_size=1, recipient_team_id=TEAM, recipient_user_id=ALICE
    )
    await streamer.append(markdown_text="Polymer ")
    assert streamer.ts is not None
    first = slack.stream_state(GENERAL, streamer.ts)
    await streamer.append(markdown_text="softens.")
    await streamer.stop(blocks=BUTTONS)
    done = slack.stream_state(GENERAL, streamer.ts)
    assert (first.status, first.text, first.appends) == ("streaming", "Polymer ", 0)
    assert (done.status, done.text, done.appends) == ("stopped", "Polymer softens.", 1)
    assert done.blocks == BUTTONS
    assert slack.message(GENERAL, streamer.ts).thread_ts == question


async def test_in_a_channel_or_group_dm_the_recipient_is_required_but_not_in_a_dm(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    mpim = slack.add_mpim([ALICE, BOB])
    dm = slack.add_im(ALICE)
    for channel in (GENERAL, mpim.id):
        ts = slack.user_message(channel, ALICE, "q")["ts"]
        assert await error_of(client.chat_startStream(channel=channel, thread_ts=ts, markdown_text="a")) == (
            "invalid_arguments"
        )
        assert [m.ts for m in slack.thread(channel, ts)] == [ts]  # nothing was posted
    dm_question = slack.user_message(dm.id, ALICE, "q")["ts"]
    started = await client.chat_startStream(channel=dm.id, thread_ts=dm_question, markdown_text="a")
    assert slack.stream_state(dm.id, started["ts"]).status == "streaming"


async def test_a_chunk_over_12000_characters_is_refused_before_anything_is_posted(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    ts = slack.user_message(GENERAL, ALICE, "q")["ts"]
    too_long = client.chat_startStream(
        channel=GENERAL, thread_ts=ts, markdown_text="x" * 12_001, recipient_team_id=TEAM, recipient_user_id=ALICE
    )
    assert await error_of(too_long) == "msg_too_long"
    assert [m.ts for m in slack.thread(GENERAL, ts)] == [ts]
    started = await client.chat_startStream(
        channel=GENERAL, thread_ts=ts, markdown_text="x" * 12_000, recipient_team_id=TEAM, recipient_user_id=ALICE
    )
    again = client.chat_appendStream(channel=GENERAL, ts=started["ts"], markdown_text="y" * 12_001)
    assert await error_of(again) == "msg_too_long"
    assert slack.stream_state(GENERAL, started["ts"]).text == "x" * 12_000


async def test_streaming_disabled_answers_feature_disabled(slack: SlackEmulator, client: AsyncWebClient) -> None:
    slack.enable_streaming(False)
    ts = slack.user_message(GENERAL, ALICE, "q")["ts"]
    start = client.chat_startStream(
        channel=GENERAL, thread_ts=ts, markdown_text="a", recipient_team_id=TEAM, recipient_user_id=ALICE
    )
    assert await error_of(start) == "feature_disabled"
    assert [m.ts for m in slack.thread(GENERAL, ts)] == [ts]


async def test_an_expired_stream_refuses_appends_and_chat_update_recovers_it(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    ts = slack.user_message(GENERAL, ALICE, "q")["ts"]
    streamer = await client.chat_stream(
        channel=GENERAL, thread_ts=ts, buffer_size=1, recipient_team_id=TEAM, recipient_user_id=ALICE
    )
    await streamer.append(markdown_text="Thinking")
    assert streamer.ts is not None
    assert slack.expire_streams() == 1
    refused = await error_of(streamer.append(markdown_text=" more"))
    stop_refused = await error_of(client.chat_stopStream(channel=GENERAL, ts=streamer.ts))
    await client.chat_update(channel=GENERAL, ts=streamer.ts, text="Thinking more, done.")
    assert (refused, stop_refused) == ("message_not_in_streaming_state", "message_not_in_streaming_state")
    state = slack.stream_state(GENERAL, streamer.ts)
    assert (state.status, state.text) == ("expired", "Thinking more, done.")


async def test_a_stream_idle_longer_than_the_expiry_expires_on_its_next_call(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    slack.enable_streaming(idle_expiry_s=0.0)  # every pause is too long
    ts = slack.user_message(GENERAL, ALICE, "q")["ts"]
    started = await client.chat_startStream(
        channel=GENERAL, thread_ts=ts, markdown_text="a", recipient_team_id=TEAM, recipient_user_id=ALICE
    )
    assert await error_of(client.chat_appendStream(channel=GENERAL, ts=started["ts"], markdown_text="b")) == (
        "message_not_in_streaming_state"
    )
    assert slack.stream_state(GENERAL, started["ts"]).status == "expired"


async def test_a_stopped_stream_takes_no_more_and_other_messages_have_no_stream_state(
    slack: SlackEmulator, client: AsyncWebClient
) -> None:
    ts = slack.user_message(GENERAL, ALICE, "q")["ts"]
    started = await client.chat_startStream(
        channel=GENERAL, thread_ts=ts, markdown_text="a", recipient_team_id=TEAM, recipient_user_id=ALICE
    )
    await client.chat_stopStream(channel=GENERAL, ts=started["ts"])
    after = client.chat_appendStream(channel=GENERAL, ts=started["ts"], markdown_text="b")
    assert await error_of(after) == "message_not_in_streaming_state"
    posted = await client.chat_postMessage(channel=GENERAL, text="plain")
    assert await error_of(client.chat_appendStream(channel=GENERAL, ts=posted["ts"], markdown_text="b")) == (
        "message_not_in_streaming_state"
    )
    with pytest.raises(AssertionError):
        slack.stream_state(GENERAL, posted["ts"])
