"""Which thread replies are small talk, a mute, a re-run, a teammate's business, or a question."""

from __future__ import annotations

import pytest

from bot.conversation.intent import Intent, intent
from bot.conversation.reply import ThreadReply

BOT = "UBOT"


def reply(text: str, raw: str | None = None) -> ThreadReply:
    return ThreadReply(
        event_id="Ev1", channel="C1", channel_type="channel", ts="2.0", thread_ts="1.0", user="U1",
        text=text, raw_text=raw if raw is not None else text,
    )  # fmt: skip


@pytest.mark.parametrize(
    "text",
    ["thanks", "Thank you!", "ty", "👍", ":+1:", ":+1::tada:", "ok", "Great, thanks a lot", "🙏 🎉", "danke schön",
     "thanks matrec", "Got it."],
)  # fmt: skip
def test_small_talk_gets_a_reaction(text: str) -> None:
    assert intent(reply(text), BOT) is Intent.SMALL_TALK


@pytest.mark.parametrize(
    "text",
    ["thanks, but would steel work at 250 °C?", "ok so what about outdoor use", "Why not PEEK?", "ok?",
     "great, and if it is 5000 a year instead", "Und bei 250 °C?"],
)  # fmt: skip
def test_anything_else_is_a_question(text: str) -> None:
    assert intent(reply(text), BOT) is Intent.QUESTION


@pytest.mark.parametrize(("text", "expected"), [
    ("mute", Intent.MUTE), ("Stop", Intent.MUTE), ("quiet please", Intent.QUESTION), ("be quiet", Intent.MUTE),
    ("unmute", Intent.UNMUTE), ("re-run", Intent.RERUN), ("Rerun!", Intent.RERUN), ("run again", Intent.RERUN),
    ("re-run with aluminium only?", Intent.QUESTION),
])  # fmt: skip
def test_commands_are_whole_replies(text: str, expected: Intent) -> None:
    assert intent(reply(text), BOT) is expected


def test_a_mention_of_the_bot_is_not_a_teammate() -> None:
    assert intent(reply("mute", raw=f"<@{BOT}> mute"), BOT) is Intent.MUTE


def test_a_reply_to_a_teammate_is_left_alone() -> None:
    assert intent(reply("Bob what do you think?", raw="<@U2> what do you think?"), BOT) is Intent.OTHERS
    assert intent(reply("thanks Bob", raw="thanks <@U2|bob>"), BOT) is Intent.OTHERS


def test_a_reply_naming_a_teammate_and_the_bot_is_for_the_bot() -> None:
    raw = f"<@U2> and <@{BOT}>: would steel work at 250 °C?"
    assert intent(reply("Bob and : would steel work at 250 °C?", raw=raw), BOT) is Intent.QUESTION
