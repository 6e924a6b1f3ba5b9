"""What a reply in a consultation thread asks of the bot, decided from its words alone (no Claude call).

Cheap and conservative: only short replies that are plainly small talk, a mute, an unmute or a
re-run are taken as such; everything else is a question for Claude. A reply that mentions a
teammate and not the bot is talk between people and is left alone.
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum
from typing import Final

from bot.conversation.reply import ThreadReply


class Intent(StrEnum):
    """What the bot does with a reply."""

    OTHERS = "others"  # addressed to a teammate: nothing
    SMALL_TALK = "small_talk"  # thanks, ok, an emoji: a reaction, no answer
    MUTE = "mute"
    UNMUTE = "unmute"
    RERUN = "rerun"
    QUESTION = "question"


_MENTION = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")
_EMOJI_CODE = re.compile(r":[a-z0-9_+'\-]+(?:::skin-tone-[2-6])?:")
_WORDS = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*", re.UNICODE)

SMALL_TALK_MAX_WORDS: Final = 6  # "thanks a lot, that helps!" is small talk; a longer reply is read
_SMALL_TALK_PHRASES: Final = frozenset(
    {
        "thanks", "thank you", "thanks a lot", "thank you so much", "thanks so much", "many thanks",
        "thx", "ty", "tyvm", "cheers", "ok", "okay", "k", "kk", "ok thanks", "ok thank you",
        "great", "great thanks", "great thank you", "perfect", "perfect thanks", "awesome", "nice",
        "cool", "got it", "got it thanks", "makes sense", "sounds good", "that helps",
        "that helps thanks", "super", "lgtm", "danke", "danke schön", "danke schon", "vielen dank",
        "merci", "merci beaucoup", "gracias", "muchas gracias", "prima", "alles klar",
    }
)  # fmt: skip
_FILLER: Final = frozenset({"matrec", "bot", "again", "so", "much", "a", "lot", "very", "you", "all", "guys"})
_MUTE_PHRASES: Final = frozenset(
    {"mute", "stop", "quiet", "be quiet", "shush", "hush", "mute this", "mute this thread", "stop it"}
)
_UNMUTE_PHRASES: Final = frozenset({"unmute", "unmute this", "unmute this thread", "un-mute"})
_RERUN_PHRASES: Final = frozenset(
    {"re-run", "rerun", "re run", "run again", "run it again", "please re-run", "please rerun", "re-run it", "rerun it"}
)


def teammates(raw_text: str, bot_user_id: str) -> set[str]:
    """The people a message mentions, other than the bot."""
    return {user for user in _MENTION.findall(raw_text) if user != bot_user_id}


def _phrase(text: str) -> str:
    words = _WORDS.findall(text.casefold())
    return " ".join(words)


def _only_emoji(text: str) -> bool:
    """Whether the text is nothing but emoji (Slack `:codes:` or Unicode pictographs) and punctuation."""
    rest = _EMOJI_CODE.sub("", text)
    if rest == text and not any(unicodedata.category(c) == "So" for c in text):
        return False
    return all(unicodedata.category(c)[0] in "SPZC" or c in "\u200d\ufe0f" for c in rest)


def intent(reply: ThreadReply, bot_user_id: str) -> Intent:
    """What the bot should do with `reply` (its plain `text` has the bot's mention removed)."""
    if teammates(reply.raw_text, bot_user_id) and f"<@{bot_user_id}" not in reply.raw_text:
        return Intent.OTHERS  # naming the bot as well asks it to answer
    text = reply.text.strip()
    if not text:
        return Intent.SMALL_TALK if not reply.files else Intent.QUESTION
    if _only_emoji(text):
        return Intent.SMALL_TALK
    phrase = _phrase(text)
    if phrase in _UNMUTE_PHRASES:
        return Intent.UNMUTE
    if phrase in _MUTE_PHRASES:
        return Intent.MUTE
    if phrase in _RERUN_PHRASES:
        return Intent.RERUN
    if "?" not in text and len(phrase.split()) <= SMALL_TALK_MAX_WORDS and _small_talk(phrase):
        return Intent.SMALL_TALK
    return Intent.QUESTION


def _small_talk(phrase: str) -> bool:
    """A thanks or an acknowledgement, maybe with filler after it ("thanks a lot matrec")."""
    words = phrase.split()
    while words:
        if " ".join(words) in _SMALL_TALK_PHRASES:
            return True
        if words[-1] not in _FILLER:
            return False
        words.pop()
    return False
