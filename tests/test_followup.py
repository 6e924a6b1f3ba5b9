"""Follow-up questions end to end: a reply in a consultation's thread answered by Claude with the
consultation as context, streamed into the thread, over both emulators with the real bot and store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot import actions
from bot.service import Running
from bot.store import ConsultationKind, Store, Turn, TurnStatus
from emulators.claude import ClaudeEmulator, Fault
from emulators.claude_records import RecordedRequest
from emulators.claude_reply import chunks
from emulators.slack import SlackEmulator
from emulators.slack_identity import JsonDict
from emulators.slack_web import ApiRequest
from emulators.slack_workspace import Message
from tests.bot_support import ALICE, GENERAL, WAIT_S, Upload, bot_replies, bot_settings, running_bot, upload
from tests.bot_support import wait_finished as wait_final
from tests.engine_support import jpeg_bytes
from tests.rerun_support import is_board, thread_records, wait_final_boards

PHOTO = jpeg_bytes(800, 600)
BOB = "U2"
BRACKET = "Wall bracket for a 20 kg pump, indoors, 500 a year"
FIRST_TEXT_VISIBLE_S = 1.5  # the target: Claude latency 1 s, first byte at 20 %
IDLE_EXPIRY_S = 0.6  # the emulated stream's idle expiry in the keep-alive test (Slack: ~30 s)


@pytest.fixture
async def bot(slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path) -> AsyncIterator[Running]:
    async with running_bot(slack, claude, bot_settings(slack, tmp_path), max_retries=0) as running:
        yield running


def shown(message: Message) -> str:
    """The answer as a person reads it: the markdown block when it was posted or taken over, else the stream."""
    markdown = [b["text"] for b in message.blocks or [] if b.get("type") == "markdown"]
    return "".join(markdown) if markdown else message.text


def boards(slack: SlackEmulator, sent: Upload) -> list[Message]:
    """The consultation boards in the upload's thread, in whatever state."""
    return [m for m in bot_replies(slack, sent.channel, sent.ts) if is_board(m)]


def answers(slack: SlackEmulator, sent: Upload, after_ts: str) -> list[Message]:
    """The bot's answer messages in the upload's thread after the message `after_ts`."""
    return [
        m
        for m in bot_replies(slack, sent.channel, sent.ts)
        if float(m.ts) > float(after_ts)
        and (m.stream_status is not None or any(b.get("type") == "markdown" for b in m.blocks or []))
    ]


def first_text_at(slack: SlackEmulator) -> float:
    """When the first words of an answer reached Slack (monotonic s)."""
    return min(
        c.at
        for c in slack.calls_to("chat.startStream") + slack.calls_to("chat.appendStream")
        if c.status == 200 and any(k.get("type") == "markdown_text" for k in c.params.get("chunks") or [])
    )


def followups(claude: ClaudeEmulator) -> list[RecordedRequest]:
    return [r for r in claude.requests if r.kind.kind == "follow_up"]


def answer_text(request: RecordedRequest) -> str:
    answer: Any = request.answer
    return str(answer["text"])


def request_text(request: RecordedRequest) -> str:
    """Every text block of the request's messages, in order."""
    return "\n".join(
        block.get("text", "")
        for message in request.body["messages"]
        for block in (message["content"] if isinstance(message["content"], list) else [{"text": message["content"]}])
    )


def question_text(request: RecordedRequest) -> str:
    """The last text of the request: the question being answered."""
    return str(request.body["messages"][-1]["content"][-1]["text"])


async def ask(slack: SlackEmulator, sent: Upload, text: str, *, user: str = ALICE) -> str:
    """A person replies in the upload's thread; returns the reply's ts."""
    event = slack.user_message(sent.channel, user, text, thread_ts=sent.ts)
    await slack.deliver_event(event)
    return str(event["ts"])


async def answered(slack: SlackEmulator, bot: Running, sent: Upload, question_ts: str) -> list[Message]:
    """Wait for the answer to the question `question_ts` to land completely; its messages."""
    await slack.wait_until(lambda: bool(answers(slack, sent, question_ts)), WAIT_S, what="an answer")
    assert bot.followups is not None
    async with asyncio.timeout(WAIT_S):
        await bot.followups.drain()
    return answers(slack, sent, question_ts)


async def turns(tmp_path: Path, sent: Upload) -> list[Turn]:
    async with await Store.open(f"sqlite:///{tmp_path / 'bot.db'}") as store:
        record = await store.latest_in_thread(sent.channel, sent.ts)
        assert record is not None
        return await store.turns(record.id)


async def final_upload(slack: SlackEmulator, text: str = BRACKET) -> Upload:
    sent = await upload(slack, PHOTO, text=text)
    await wait_final(slack, sent)
    return sent


async def test_a_follow_up_is_answered_with_the_consultations_analyses_and_photo_streamed_in_batches(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: Running, tmp_path: Path
) -> None:
    sent = await final_upload(slack)
    slack.enable_streaming()
    claude.latencies["follow_up"] = 1.0
    asked_at = time.monotonic()
    question = await ask(slack, sent, "Why is metal better than a polymer for this bracket's strength?")
    (message,) = await answered(slack, bot, sent, question)

    (request,) = followups(claude)
    context = request_text(request)
    assert '<recommendation best="metal"' in context and context.count("<analysis material=") == 6
    assert "Wall bracket for a 20 kg pump" in context and "Why is metal better" in context
    assert request.image_sizes and len(request.image_sizes) == 1  # the stored photo, sent again
    assert shown(message) == answer_text(request) and "metal" in shown(message)

    (start,) = slack.calls_to("chat.startStream")
    assert start.params["recipient_user_id"] == ALICE and start.params["recipient_team_id"]
    assert [c["type"] for c in start.params["chunks"]] == ["task_update"]  # "Thinking…" at once
    assert first_text_at(slack) - asked_at <= FIRST_TEXT_VISIBLE_S
    assert len(slack.calls_to("chat.stopStream")) == 1
    assert 1 <= len(slack.calls_to("chat.appendStream")) < len(chunks(answer_text(request)))
    assert slack.stream_state(GENERAL, message.ts).status == "stopped"
    (turn,) = await turns(tmp_path, sent)
    assert turn.status is TurnStatus.ANSWERED and turn.answer_ts == message.ts and turn.answer
    assert turn.user_id == ALICE and turn.changes == []


async def test_the_second_follow_up_reads_the_cached_prefix_and_carries_the_first_as_history(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: Running, tmp_path: Path
) -> None:
    sent = await final_upload(slack)
    await answered(slack, bot, sent, await ask(slack, sent, "What does the metal option cost?"))
    await answered(slack, bot, sent, await ask(slack, sent, "Which grades of metal would you use?"))

    first, second = followups(claude)
    assert first.usage is not None and second.usage is not None
    assert first.usage["cache_creation_input_tokens"] > 0
    assert second.usage["cache_read_input_tokens"] >= first.usage["cache_creation_input_tokens"]
    roles = [m["role"] for m in second.body["messages"]]
    assert roles == ["user", "assistant", "user"]
    assert second.body["messages"][1]["content"][0]["text"] == answer_text(first)
    assert [t.status for t in await turns(tmp_path, sent)] == [TurnStatus.ANSWERED, TurnStatus.ANSWERED]


async def test_two_people_asking_in_two_threads_at_once_each_get_their_own_answer(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: Running
) -> None:
    first = await final_upload(slack, "Wall bracket for a 20 kg pump, indoors, 500 a year")
    second = await final_upload(slack, "Gear housing for a garden tool, outdoors, 2000 a year")
    slack.enable_streaming()
    claude.latencies["follow_up"] = 0.8
    asked = await asyncio.gather(
        ask(slack, first, "How does the best option cope with corrosion?"),
        ask(slack, second, "What does the runner-up cost compared with the best?", user=BOB),
    )
    one = await answered(slack, bot, first, asked[0])
    two = await answered(slack, bot, second, asked[1])

    by_question = {("corrosion" in question_text(r)): answer_text(r) for r in followups(claude)}
    assert [shown(m) for m in one] == [by_question[True]]
    assert [shown(m) for m in two] == [by_question[False]]
    assert by_question[True] != by_question[False]
    recipients = {c.params["thread_ts"]: c.params["recipient_user_id"] for c in slack.calls_to("chat.startStream")}
    assert recipients == {first.ts: ALICE, second.ts: BOB}
    starts = sorted(r.arrived_at for r in followups(claude))
    finishes = sorted(r.finished_at or 0.0 for r in followups(claude))
    assert starts[1] < finishes[0]  # the two answers were written at the same time


async def test_a_question_asked_during_the_analysis_is_answered_once_it_is_final(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: Running, tmp_path: Path
) -> None:
    claude.latency_s = 1.0
    claude.latencies["follow_up"] = 0.2
    sent = await upload(slack, PHOTO)
    await slack.wait_until(lambda: bool(bot_replies(slack, GENERAL, sent.ts)), WAIT_S, what="the board")
    question = await ask(slack, sent, "Would a polymer also carry the load?")
    await slack.wait_until(
        lambda: "hourglass_flowing_sand" in slack.reactions(GENERAL, question), WAIT_S, what="the waiting reaction"
    )
    assert followups(claude) == []
    (message,) = await answered(slack, bot, sent, question)

    (request,) = followups(claude)
    analysis = [r for r in claude.requests if r.kind.kind != "follow_up"]
    assert request.arrived_at >= max(r.finished_at or 0.0 for r in analysis)
    assert '<recommendation best="metal"' in request_text(request)
    assert "hourglass_flowing_sand" not in slack.reactions(GENERAL, question)
    assert shown(message) == answer_text(request)
    assert [t.status for t in await turns(tmp_path, sent)] == [TurnStatus.ANSWERED]


@pytest.mark.parametrize("text", ["thanks!", "👍", ":+1:", "ok"])
async def test_small_talk_gets_a_reaction_and_no_claude_call(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: Running, text: str
) -> None:
    sent = await final_upload(slack)
    before = len(bot_replies(slack, GENERAL, sent.ts))
    reply = await ask(slack, sent, text)
    await slack.wait_until(lambda: bool(slack.reactions(GENERAL, reply)), WAIT_S, what="a reaction")
    assert followups(claude) == []
    assert len(bot_replies(slack, GENERAL, sent.ts)) == before


async def test_a_reply_to_a_teammate_is_left_alone(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: Running, tmp_path: Path
) -> None:
    sent = await final_upload(slack)
    aside = await ask(slack, sent, "<@U2> could you check the drawing for the wall thickness?")
    question = await ask(slack, sent, "Which metal grade would you pick?")
    await answered(slack, bot, sent, question)  # handled after the aside was

    (request,) = followups(claude)
    assert "drawing" not in request_text(request)
    assert slack.reactions(GENERAL, aside) == {}
    assert [t.message_ts for t in await turns(tmp_path, sent)] == [question]


async def test_a_muted_thread_is_ignored_until_it_is_unmuted_or_the_bot_is_mentioned(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: Running, tmp_path: Path
) -> None:
    sent = await final_upload(slack)
    mute = await ask(slack, sent, "mute")
    await slack.wait_until(
        lambda: any(actions.UNMUTE in str(m.blocks) for m in bot_replies(slack, GENERAL, sent.ts)),
        WAIT_S,
        what="the mute notice with its Unmute button",
    )
    ignored = await ask(slack, sent, "What about aluminium grades?")
    mentioned = await ask(slack, sent, f"<@{slack.bot_user_id}> which grade of steel then?")
    await answered(slack, bot, sent, mentioned)
    assert [t.message_ts for t in await turns(tmp_path, sent)] == [mentioned]

    await ask(slack, sent, "unmute")
    await slack.wait_until(lambda: any("Unmuted" in m.text for m in bot_replies(slack, GENERAL, sent.ts)), WAIT_S)
    question = await ask(slack, sent, "And how is it best machined?")
    await answered(slack, bot, sent, question)
    assert [t.message_ts for t in await turns(tmp_path, sent)] == [mentioned, question]
    assert slack.reactions(GENERAL, ignored) == {} and len(followups(claude)) == 2
    assert mute not in {t.message_ts for t in await turns(tmp_path, sent)}


async def test_where_streaming_is_disabled_the_answer_is_one_complete_posted_message(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: Running
) -> None:
    sent = await final_upload(slack)  # the emulator answers chat.startStream with feature_disabled
    claude.latencies["follow_up"] = 0.5
    question = await ask(slack, sent, "How heavy will the metal bracket be?")
    (message,) = await answered(slack, bot, sent, question)
    (request,) = followups(claude)
    assert shown(message) == answer_text(request) and message.stream_status is None
    assert len(slack.calls_to("chat.startStream")) == 1  # asked once; the next answers do not ask again
    question = await ask(slack, sent, "And the polymer one?")
    await answered(slack, bot, sent, question)
    assert len(slack.calls_to("chat.startStream")) == 1


async def test_a_stream_that_expires_mid_answer_is_completed_by_an_update(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: Running
) -> None:
    sent = await final_upload(slack)
    slack.enable_streaming()
    claude.latencies["follow_up"] = 1.5
    question = await ask(slack, sent, "Why not wood for this bracket, given the load and the strength needed?")
    await slack.wait_until(lambda: bool(slack.calls_to("chat.startStream")), WAIT_S, what="the stream")
    assert slack.expire_streams() == 1
    (message,) = await answered(slack, bot, sent, question)
    (request,) = followups(claude)
    assert shown(message) == answer_text(request)
    assert any(c.params["ts"] == message.ts for c in slack.calls_to("chat.update"))


async def test_a_long_think_keeps_the_stream_alive_and_the_answer_completes_in_it(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: Running
) -> None:
    sent = await final_upload(slack)
    slack.enable_streaming(idle_expiry_s=IDLE_EXPIRY_S)
    assert bot.followups is not None
    bot.followups.answerer.limits.keepalive_s = IDLE_EXPIRY_S / 3
    claude.latencies["follow_up"] = 3.0  # first byte at 0.9 s, the answer's words from about 2.8 s
    claude.thinking_tokens = 6000
    question = await ask(slack, sent, "Why is metal better than a polymer for this bracket's strength?")
    (message,) = await answered(slack, bot, sent, question)

    (request,) = followups(claude)
    (start,) = slack.calls_to("chat.startStream")
    assert first_text_at(slack) - start.at > 2 * IDLE_EXPIRY_S  # the think outlasted the stream's idle expiry
    state = slack.stream_state(GENERAL, message.ts)
    assert state.status == "stopped" and shown(message) == answer_text(request)
    assert not any(c.params["ts"] == message.ts for c in slack.calls_to("chat.update"))
    kinds = [(c["type"], c.get("status")) for c in state.chunks]
    words = kinds.index(("markdown_text", None))
    assert kinds[0] == ("task_update", "in_progress") and kinds[words - 1] == ("task_update", "complete")
    still = [c for c in state.chunks[:words] if "still thinking" in str(c.get("details"))]
    assert len(still) >= 2 and all(c["status"] == "in_progress" for c in still)


async def test_an_answer_longer_than_slack_takes_in_one_message_is_split(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: Running
) -> None:
    sent = await final_upload(slack)
    slack.enable_streaming()
    claude.thinking = False  # all of the output budget goes to the answer
    long = "".join(f"{i}. Aluminium 6082-T6 keeps its strength & stiffness <at 80 °C>.\n" for i in range(260))
    claude.responder = lambda r: {"text": long, "tool_input": None} if r.kind.kind == "follow_up" else None
    question = await ask(slack, sent, "List every metal grade you considered, with reasons")
    messages = await answered(slack, bot, sent, question)
    assert len(messages) == 2
    assert all(len(shown(m)) <= 12_000 for m in messages)
    text = "".join(shown(m) for m in messages)
    assert text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").strip() == long.strip()


async def test_a_german_question_gets_a_german_answer(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: Running
) -> None:
    sent = await final_upload(slack)
    question = await ask(slack, sent, "Warum ist das Metall besser und wie ist die Festigkeit bei der Last?")
    (message,) = await answered(slack, bot, sent, question)
    assert "Die Beratung empfiehlt" in shown(message)


async def test_a_question_that_changes_a_requirement_offers_a_rerun_and_typing_rerun_starts_it(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: Running, tmp_path: Path
) -> None:
    sent = await final_upload(slack)
    slack.enable_streaming()
    question = await ask(slack, sent, "What if the bracket runs at 250 °C?")
    (message,) = await answered(slack, bot, sent, question)
    buttons = [e for b in message.blocks or [] if b.get("type") == "actions" for e in b["elements"]]
    (turn,) = await turns(tmp_path, sent)
    assert [(e["action_id"], e["value"]) for e in buttons] == [(actions.RERUN_WITH, turn.id)]
    assert turn.changes and "250" in turn.changes[0]

    await ask(slack, sent, "re-run")
    await wait_final_boards(slack, sent, 2)
    async with await Store.open(f"sqlite:///{tmp_path / 'bot.db'}") as store:
        (child,) = await store.children(turn.consultation_id)
    assert child.kind is ConsultationKind.RERUN and any("250" in r for r in child.requirements)


async def test_a_rerun_clicked_the_moment_its_button_shows_carries_the_answers_changes(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: Running, tmp_path: Path
) -> None:
    sent = await final_upload(slack)
    slack.enable_streaming()
    stop = slack.web.methods["chat.stopStream"]

    async def stop_then_click(request: ApiRequest) -> JsonDict:
        """Slack shows the button before its answer to stopStream reaches the bot: a quick asker
        clicks in between, and the click is handled before the bot reads that answer."""
        answer = await stop.handler(request)
        await slack.click(ALICE, GENERAL, request.required("ts"), actions.RERUN_WITH)
        await slack.wait_until(lambda: len(boards(slack, sent)) >= 2, WAIT_S, what="the re-run's board")
        return answer

    slack.web.methods = {**slack.web.methods, "chat.stopStream": replace(stop, handler=stop_then_click)}
    await answered(slack, bot, sent, await ask(slack, sent, "What if the bracket runs at 250 °C?"))
    await wait_final_boards(slack, sent, 2)
    parent, child = await thread_records(tmp_path, sent)
    async with await Store.open(f"sqlite:///{tmp_path / 'bot.db'}") as store:
        (turn,) = await store.turns(parent.id)
    assert child.parent_id == parent.id and turn.changes and "250" in turn.changes[0]
    assert any("250" in r for r in child.requirements)


async def test_a_redelivered_question_is_answered_once(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: Running, tmp_path: Path
) -> None:
    sent = await final_upload(slack)
    event = slack.user_message(GENERAL, ALICE, "Which metal grade would you pick?", thread_ts=sent.ts)
    envelope = await slack.deliver_event(event)
    await slack.wait_for_ack(await slack.redeliver(envelope, retry_attempt=1, retry_reason="timeout"), WAIT_S)
    await answered(slack, bot, sent, str(event["ts"]))
    await slack.wait_for_ack(await slack.redeliver(envelope, retry_attempt=2, retry_reason="timeout"), WAIT_S)
    await answered(slack, bot, sent, str(event["ts"]))
    assert len(followups(claude)) == 1 and len(answers(slack, sent, str(event["ts"]))) == 1
    assert len(await turns(tmp_path, sent)) == 1


async def test_a_consultation_without_a_recommendation_is_not_discussed(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: Running, tmp_path: Path
) -> None:
    claude.fail(Fault.SERVER_ERROR, match="branch", times=None)
    sent = await upload(slack, PHOTO)
    await wait_final(slack, sent)
    await ask(slack, sent, "Why did it fail?")
    await slack.wait_until(
        lambda: any("nothing to discuss" in m.text for m in bot_replies(slack, GENERAL, sent.ts)), WAIT_S
    )
    assert followups(claude) == []
    assert [t.status for t in await turns(tmp_path, sent)] == [TurnStatus.SKIPPED]


async def test_when_claude_fails_before_any_words_the_asker_is_told_to_ask_again(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: Running, tmp_path: Path
) -> None:
    sent = await final_upload(slack)
    claude.fail(Fault.SPEND_LIMIT, match="follow_up", times=None)  # not worth retrying
    await ask(slack, sent, "Which metal grade would you pick?")
    await slack.wait_until(
        lambda: any("ask again" in m.text for m in bot_replies(slack, GENERAL, sent.ts)), WAIT_S, what="the notice"
    )
    assert bot.followups is not None
    async with asyncio.timeout(WAIT_S):
        await bot.followups.drain()  # the turn is marked failed just after the notice is posted
    assert [t.status for t in await turns(tmp_path, sent)] == [TurnStatus.FAILED]
    assert "spend limit" in bot_replies(slack, GENERAL, sent.ts)[-1].text


async def test_an_answer_cut_off_midway_keeps_its_words_and_says_so(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: Running, tmp_path: Path
) -> None:
    sent = await final_upload(slack)
    slack.enable_streaming()
    claude.latencies["follow_up"] = 0.5
    claude.fail(Fault.DROP_MIDSTREAM, match="follow_up")
    question = await ask(slack, sent, "Why is metal better than a polymer for this bracket's strength?")
    (message,) = await answered(slack, bot, sent, question)
    (request,) = followups(claude)
    text = shown(message)
    assert "cut off" in text and text.startswith(answer_text(request)[:20])
    (turn,) = await turns(tmp_path, sent)
    assert turn.status is TurnStatus.FAILED and turn.answer and turn.answer_ts == message.ts


async def test_a_question_typed_at_the_top_of_a_dm_is_about_the_latest_consultation_there(
    slack: SlackEmulator, claude: ClaudeEmulator, bot: Running
) -> None:
    dm = slack.add_im(ALICE)
    sent = await upload(slack, PHOTO, channel=dm.id)
    await wait_final(slack, sent)
    event = slack.user_message(dm.id, ALICE, "Which metal grade would you pick for it?")
    await slack.deliver_event(event)
    question = Upload(dm.id, str(event["ts"]))
    (message,) = await answered(slack, bot, question, question.ts)
    (request,) = followups(claude)
    assert shown(message) == answer_text(request) and message.thread_ts == question.ts
    assert "Which metal grade" in question_text(request)
