"""The answer writer over the Slack emulator: streamed natively in batches, or posted and updated
where streaming is refused or expires, always complete, escaped and split within Slack's limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.budget import Priority
from bot.escape import escape
from bot.store import Store
from bot.streaming import AnswerWriter, StreamLimits, sendable, split_point
from emulators.slack import SlackEmulator
from emulators.slack_workspace import Message
from tests.budget_support import budgeted_client, rates
from tests.store_support import fresh_database

GENERAL, ALICE, TEAM = "C0GENERAL", "U1", "T0TEST"
WAIT_S = 15.0
BUTTON = {
    "type": "actions",
    "elements": [
        {
            "type": "button",
            "action_id": "matrec_rerun_with",
            "value": "t1",
            "text": {"type": "plain_text", "text": "Re-run"},
        }
    ],
}
ANSWER = "PA66-GF30 keeps **85 MPa** at 80 °C; polypropylene creeps under a 20 kg pump. " * 6


@pytest.fixture
def client(slack: SlackEmulator) -> AsyncWebClient:
    return AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with fresh_database("sqlite", tmp_path) as url, await Store.open(url) as opened:
        yield opened


async def no_start_left(slack: SlackEmulator, store: Store) -> AsyncWebClient:
    """A client in a shared budget whose chat.startStream bucket has one start a day, already spent."""
    client = budgeted_client(slack, store, rates(tier2=1 / (24 * 60)))
    assert client.budget is not None
    assert await client.budget.admit("chat.startStream", GENERAL, Priority.FINAL, 0.0) == 0.0
    return client


@pytest.fixture
def question(slack: SlackEmulator) -> str:
    """The ts of a question in GENERAL: the answer threads under it."""
    return str(slack.user_message(GENERAL, ALICE, "Which polymer would work?")["ts"])


def writer(client: AsyncWebClient, thread_ts: str, limits: StreamLimits | None = None) -> AnswerWriter:
    return AnswerWriter(
        client,
        channel=GENERAL,
        thread_ts=thread_ts,
        recipient_user_id=ALICE,
        recipient_team_id=TEAM,
        limits=limits or StreamLimits(flush_interval_s=0.1, fallback_interval_s=0.1),
    )


def shown(message: Message) -> str:
    """What a person reads as the answer: the markdown block if there is one, else the streamed text."""
    markdown = [b["text"] for b in message.blocks or [] if b.get("type") == "markdown"]
    return "".join(markdown) if markdown else message.text


def answers(slack: SlackEmulator, thread_ts: str) -> list[Message]:
    return [m for m in slack.thread(GENERAL, thread_ts) if m.bot_id]


async def model(answer: AnswerWriter, text: str, *, pieces: int = 60, pause_s: float = 0.01) -> int:
    """Feed `text` as a model would: many small deltas over time. Returns how many."""
    size = max(len(text) // pieces, 1)
    deltas = [text[i : i + size] for i in range(0, len(text), size)]
    for delta in deltas:
        answer.write(delta)
        await asyncio.sleep(pause_s)
    return len(deltas)


async def test_an_answer_is_streamed_in_batches_and_stopped_with_its_buttons(
    slack: SlackEmulator, client: AsyncWebClient, question: str
) -> None:
    slack.enable_streaming()
    answer = writer(client, question)
    deltas = await model(answer, ANSWER)
    (ts,) = await answer.finish(blocks=[BUTTON])
    assert [len(slack.calls_to(m)) for m in ("chat.startStream", "chat.stopStream")] == [1, 1]
    appends = len(slack.calls_to("chat.appendStream"))
    assert 1 <= appends < deltas / 3
    assert slack.calls_to("chat.startStream")[0].params["recipient_user_id"] == ALICE
    (message,) = answers(slack, question)
    assert message.ts == ts and shown(message) == escape(ANSWER)
    assert message.blocks == [BUTTON]
    assert not message.streaming and answer.streamed
    assert slack.calls_to("chat.update") == []


async def test_the_first_text_starts_the_stream_at_once(
    slack: SlackEmulator, client: AsyncWebClient, question: str
) -> None:
    slack.enable_streaming()
    answer = writer(client, question, StreamLimits(flush_interval_s=30))
    answer.write("Short answer: ")
    await slack.wait_until(lambda: bool(slack.calls_to("chat.startStream")), WAIT_S, what="the stream's start")
    answer.write("metal.")
    await answer.finish()
    assert "".join(m.text for m in answers(slack, question)) == "Short answer: metal."


async def test_model_text_can_never_ping_or_link(slack: SlackEmulator, client: AsyncWebClient, question: str) -> None:
    slack.enable_streaming()
    answer = writer(client, question)
    for delta in ["Ask <@U2> or <!chan", "nel>, @ev", "ery", "one and @he", "re: <https://evil.example|docs> & more"]:
        answer.write(delta)
        await asyncio.sleep(0.12)
    await answer.finish()
    text = "".join(shown(m) for m in answers(slack, question))
    assert "<" not in text and ">" not in text.replace("&gt;", "")
    assert "@\u2060everyone" in text and "@\u2060here" in text and "@everyone" not in text


async def test_where_streaming_is_disabled_the_answer_is_posted_and_updated(
    slack: SlackEmulator, client: AsyncWebClient, question: str
) -> None:
    answer = writer(client, question)  # the emulator answers feature_disabled until enabled
    await model(answer, ANSWER)
    await answer.finish(blocks=[BUTTON])
    (message,) = answers(slack, question)
    assert shown(message) == escape(ANSWER) and message.blocks is not None and message.blocks[-1] == BUTTON
    assert len(slack.calls_to("chat.postMessage")) == 1 and not answer.streamed
    assert 1 <= len(slack.calls_to("chat.update")) < 60


async def test_a_stream_that_expires_mid_answer_is_finished_by_updates(
    slack: SlackEmulator, client: AsyncWebClient, question: str
) -> None:
    slack.enable_streaming(idle_expiry_s=0.3)
    answer = writer(client, question)
    answer.write("The first half of the answer. ")
    await slack.wait_until(lambda: bool(slack.calls_to("chat.startStream")), WAIT_S, what="the stream's start")
    await asyncio.sleep(0.5)  # the model pauses longer than the stream may idle
    answer.write("The second half.")
    await answer.finish(blocks=[BUTTON])
    (message,) = answers(slack, question)
    assert shown(message) == "The first half of the answer. The second half."
    assert message.blocks is not None and message.blocks[-1] == BUTTON
    assert slack.calls_to("chat.update")[0].params["ts"] == message.ts


async def test_a_stop_on_an_expired_stream_lands_by_update(
    slack: SlackEmulator, client: AsyncWebClient, question: str
) -> None:
    slack.enable_streaming(idle_expiry_s=0.3)
    answer = writer(client, question)
    answer.write("All of the answer.")
    await slack.wait_until(lambda: bool(slack.calls_to("chat.startStream")), WAIT_S, what="the stream's start")
    await asyncio.sleep(0.5)  # e.g. the model writes its tool call after the text
    await answer.finish(blocks=[BUTTON])
    (message,) = answers(slack, question)
    assert shown(message) == "All of the answer." and message.blocks is not None and message.blocks[-1] == BUTTON


@pytest.mark.parametrize("streaming", [True, False], ids=["streamed", "posted"])
async def test_an_answer_longer_than_a_message_continues_in_the_next(
    slack: SlackEmulator, client: AsyncWebClient, question: str, streaming: bool
) -> None:
    slack.enable_streaming(streaming)
    long = "".join(f"Line {i}: aluminium 6061-T6 & steel S355 compared at <80 °C>.\n" for i in range(500))
    answer = writer(client, question)
    await model(answer, long, pieces=100, pause_s=0.002)
    await answer.finish(blocks=[BUTTON])
    messages = answers(slack, question)
    assert len(messages) >= 3
    assert "".join(shown(m) for m in messages) == escape(long)
    assert all(len(shown(m)) <= 12_000 and len(m.text) <= 12_000 for m in messages)
    assert all(shown(m).endswith("\n") for m in messages[:-1])  # cut at a line's end
    assert [m.blocks is not None and BUTTON in m.blocks for m in messages] == [False] * (len(messages) - 1) + [True]


async def test_when_the_shared_start_budget_is_spent_the_answer_is_posted(
    slack: SlackEmulator, store: Store, question: str
) -> None:
    slack.enable_streaming()
    client = budgeted_client(slack, store, rates(tier2=1 / (24 * 60), burst=1))  # one start (and stop) a day
    limits = StreamLimits(flush_interval_s=0.05)
    first, second = writer(client, question, limits), writer(client, question, limits)
    first.write("one")
    second.write("two")
    await first.finish()
    await second.finish()
    assert len(slack.calls_to("chat.startStream")) == 1 and len(slack.calls_to("chat.postMessage")) == 1
    assert sorted(shown(m) for m in answers(slack, question)) == ["one", "two"]


async def test_no_text_and_no_blocks_posts_nothing(slack: SlackEmulator, client: AsyncWebClient, question: str) -> None:
    slack.enable_streaming()
    assert await writer(client, question).finish() == []
    assert answers(slack, question) == []


def test_a_possible_mass_mention_at_the_end_is_held_back() -> None:
    assert sendable("ask @ev") == "ask "
    assert sendable("ask @everyone") == "ask @everyone"
    assert sendable("mail a@b.c now") == "mail a@b.c now"
    assert sendable("end @") == "end "


def test_a_split_ends_a_line_or_word_and_never_cuts_an_entity() -> None:
    assert split_point("short", 10) == 5
    assert split_point("one two three", 9) == 8
    text = "x" * 8 + "&amp;"
    assert split_point(text, 10) == 8


async def test_a_rate_limited_start_posts_the_answer_instead(
    slack: SlackEmulator, client: AsyncWebClient, question: str
) -> None:
    slack.enable_streaming()
    slack.ratelimit_next("chat.startStream")
    answer = writer(client, question)
    await model(answer, ANSWER)
    await answer.finish(blocks=[BUTTON])
    (message,) = answers(slack, question)
    assert shown(message) == escape(ANSWER) and not answer.streamed
    assert message.blocks is not None and message.blocks[-1] == BUTTON


async def test_a_rate_limited_append_is_taken_over_by_updates(
    slack: SlackEmulator, client: AsyncWebClient, question: str
) -> None:
    slack.enable_streaming()
    answer = writer(client, question)
    answer.write("The start. ")
    await slack.wait_until(lambda: bool(slack.calls_to("chat.startStream")), WAIT_S, what="the stream's start")
    slack.ratelimit_next("chat.appendStream")
    await model(answer, ANSWER)
    await answer.finish(blocks=[BUTTON])
    (message,) = answers(slack, question)
    assert shown(message) == escape("The start. " + ANSWER) and answer.streamed
    assert message.blocks is not None and message.blocks[-1] == BUTTON


def task_updates(slack: SlackEmulator, ts: str) -> list[dict[str, object]]:
    """The task_update chunks the stream `ts` received, in order."""
    return [c for c in slack.stream_state(GENERAL, ts).chunks if c.get("type") == "task_update"]


async def test_a_begun_answer_shows_its_thinking_task_at_once_and_completes_it_with_the_first_words(
    slack: SlackEmulator, client: AsyncWebClient, question: str
) -> None:
    slack.enable_streaming()
    answer = writer(client, question)
    answer.begin()
    await slack.wait_until(lambda: bool(slack.calls_to("chat.startStream")), WAIT_S, what="the stream's start")
    (start,) = slack.calls_to("chat.startStream")
    assert [(c["type"], c["status"]) for c in start.params["chunks"]] == [("task_update", "in_progress")]
    answer.write("Metal.")
    (ts,) = await answer.finish(blocks=[BUTTON])
    kinds = [(c["type"], c.get("status")) for c in slack.stream_state(GENERAL, ts).chunks]
    assert kinds == [("task_update", "in_progress"), ("task_update", "complete"), ("markdown_text", None)]
    (message,) = answers(slack, question)
    assert message.text == "Metal." and message.blocks == [BUTTON] and answer.keepalives == 0


async def test_a_long_think_is_kept_alive_by_a_timer_and_the_answer_completes_in_the_stream(
    slack: SlackEmulator, client: AsyncWebClient, question: str
) -> None:
    slack.enable_streaming(idle_expiry_s=0.3)
    answer = writer(client, question, StreamLimits(flush_interval_s=0.1, keepalive_s=0.1))
    answer.begin()
    # no text for four keep-alive periods, longer than the stream may idle
    await slack.wait_until(lambda: len(slack.calls_to("chat.appendStream")) >= 4, WAIT_S, what="keep-alives")
    answer.write("Metal, after a long think.")
    (ts,) = await answer.finish()
    assert slack.stream_state(GENERAL, ts).status == "stopped" and slack.calls_to("chat.update") == []
    tasks = task_updates(slack, ts)
    assert all(t["id"] == tasks[0]["id"] for t in tasks) and answer.keepalives >= 4
    assert "still thinking" in str(tasks[1]["details"])
    assert tasks[-1]["status"] == "complete" and "thought for" in str(tasks[-1]["details"])
    assert answers(slack, question)[0].text == "Metal, after a long think."


async def test_an_idle_gap_mid_answer_is_kept_alive_too(
    slack: SlackEmulator, client: AsyncWebClient, question: str
) -> None:
    slack.enable_streaming(idle_expiry_s=0.3)
    answer = writer(client, question, StreamLimits(flush_interval_s=0.1, keepalive_s=0.1))
    answer.begin()
    answer.write("The first half. ")
    await slack.wait_until(lambda: bool(slack.calls_to("chat.appendStream")), WAIT_S, what="the first words")
    await slack.wait_until(lambda: answer.keepalives >= 4, WAIT_S, what="keep-alives")  # e.g. the tool call
    answer.write("The second half.")
    (ts,) = await answer.finish(blocks=[BUTTON])
    assert slack.stream_state(GENERAL, ts).status == "stopped" and slack.calls_to("chat.update") == []
    assert {t["status"] for t in task_updates(slack, ts)[1:]} == {"complete"}
    (message,) = answers(slack, question)
    assert message.text == "The first half. The second half." and message.blocks == [BUTTON]


async def test_where_streaming_is_disabled_a_begun_answer_is_posted_with_its_first_words(
    slack: SlackEmulator, client: AsyncWebClient, question: str
) -> None:
    answer = writer(client, question)  # feature_disabled
    answer.begin()
    await slack.wait_until(lambda: bool(slack.calls_to("chat.startStream")), WAIT_S, what="the refused start")
    assert answers(slack, question) == []
    answer.write(ANSWER)
    await answer.finish()
    (message,) = answers(slack, question)
    assert shown(message) == escape(ANSWER) and len(slack.calls_to("chat.startStream")) == 1


async def test_when_the_shared_start_budget_is_spent_a_begun_answer_is_posted(
    slack: SlackEmulator, store: Store, question: str
) -> None:
    slack.enable_streaming()
    limits = StreamLimits(flush_interval_s=0.05)
    answer = writer(await no_start_left(slack, store), question, limits)
    answer.begin()
    answer.write("one")
    await answer.finish()
    assert slack.calls_to("chat.startStream") == [] and [shown(m) for m in answers(slack, question)] == ["one"]


async def test_a_thinking_stream_that_expired_gets_its_words_by_update(
    slack: SlackEmulator, client: AsyncWebClient, question: str
) -> None:
    slack.enable_streaming()
    answer = writer(client, question, StreamLimits(flush_interval_s=0.1, keepalive_s=0.1))
    answer.begin()
    await slack.wait_until(lambda: bool(slack.calls_to("chat.startStream")), WAIT_S, what="the stream's start")
    assert slack.expire_streams() == 1
    await slack.wait_until(lambda: bool(slack.calls_to("chat.appendStream")), WAIT_S, what="the failed keep-alive")
    answer.write("Metal.")
    (ts,) = await answer.finish(blocks=[BUTTON])
    (message,) = answers(slack, question)
    assert message.ts == ts and shown(message) == "Metal." and message.blocks and message.blocks[-1] == BUTTON
    assert all("continued" not in str(c.params.get("text")) for c in slack.calls_to("chat.update"))


async def test_a_failure_before_any_words_ends_the_thinking_task_as_an_error_with_the_notice(
    slack: SlackEmulator, client: AsyncWebClient, question: str
) -> None:
    slack.enable_streaming()
    answer = writer(client, question)
    answer.begin()
    await slack.wait_until(lambda: bool(slack.calls_to("chat.startStream")), WAIT_S, what="the stream's start")
    (ts,) = await answer.finish(empty_text="Sorry, please ask again.", failed=True)
    assert task_updates(slack, ts)[-1]["status"] == "error"
    assert [m.text for m in answers(slack, question)] == ["Sorry, please ask again."]
