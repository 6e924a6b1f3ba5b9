"""Block Kit primitives that respect Slack's size limits, and fitting escaped text into them.

Every mrkdwn text object sets `verbatim: true`, so Slack does not auto-link URLs or channel
names or parse mentions in it; `<...>` would still be parsed, which is why all model and user
text goes through `escape()` first and is cut only between entities, never inside one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from bot.escape import escape

MAX_BLOCKS: Final = 50
MAX_SECTION_CHARS: Final = 3_000
MAX_HEADER_CHARS: Final = 150
MAX_CONTEXT_ELEMENTS: Final = 10
MAX_FALLBACK_CHARS: Final = 3_900  # chat.update answers msg_too_long above ~4,000
ELLIPSIS: Final = "…"
WORD_BACKTRACK_CHARS: Final = 30  # how far back a cut may move to end on a whole word
LOOKAHEAD_CHARS: Final = 16  # longer than "@everyone", the longest text escape() rewrites
_TRAILING: Final = " \n\t,:·-–—"  # stripped before the ellipsis; never ';', which ends an entity

Block = dict[str, Any]


@dataclass(frozen=True)
class Rendered:
    """A Slack message: blocks and the top-level `text` fallback (notifications, old clients)."""

    text: str  # the top-level `text` fallback (non-empty, <= 3,900 chars)
    blocks: list[dict[str, Any]]  # <= 50 blocks, every section text <= 3,000 chars


def fit(text: str, limit: int) -> str:
    """Already-escaped `text` cut to at most `limit` chars with an ellipsis, on a word if one is near."""
    if len(text) <= limit:
        return text
    cut = text[: max(limit - len(ELLIPSIS), 0)]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]  # never leave half an entity such as "&am"
    space = max(cut.rfind(" "), cut.rfind("\n"))
    if space > 0 and space >= len(cut) - min(WORD_BACKTRACK_CHARS, limit // 4):
        cut = cut[:space]
    return cut.rstrip(_TRAILING) + ELLIPSIS


def _escaped_prefix(text: str, limit: int) -> str:
    # Escaping only ever lengthens text, so a prefix a little longer than `limit` decides the
    # result; the margin lets a mass mention straddling the cut still be recognised.
    return escape(text[: limit + LOOKAHEAD_CHARS])


def clip(raw: str, limit: int) -> str:
    """Model or user text on one line: whitespace collapsed, escaped, cut to `limit` chars."""
    return fit(_escaped_prefix(" ".join(raw.split()), limit), limit)


def clip_lines(raw: str, limit: int) -> list[str]:
    """Model or user text keeping its non-blank lines: escaped, cut to `limit` chars in all."""
    lines = [" ".join(line.split()) for line in raw.splitlines()]
    text = fit(_escaped_prefix("\n".join(line for line in lines if line), limit), limit)
    return [line for line in text.split("\n") if line]


def mrkdwn(text: str) -> Block:
    """A mrkdwn text object that Slack shows as written: no auto-links, no parsed names."""
    return {"type": "mrkdwn", "text": fit(text, MAX_SECTION_CHARS) or ELLIPSIS, "verbatim": True}


def section(text: str) -> Block:
    """A section block holding `text` (already mrkdwn)."""
    return {"type": "section", "text": mrkdwn(text)}


def context(*texts: str) -> Block:
    """A context block: small grey mrkdwn lines."""
    return {"type": "context", "elements": [mrkdwn(text) for text in texts[:MAX_CONTEXT_ELEMENTS]]}


def header(text: str) -> Block:
    """A header block; plain text only, so pass our own words, not model or user text."""
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": fit(text, MAX_HEADER_CHARS), "emoji": True},
    }


def divider() -> Block:
    """A divider block."""
    return {"type": "divider"}


def capped(blocks: list[Block]) -> list[Block]:
    """`blocks`, or the first of them and an ellipsis note when there are more than Slack takes."""
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    return [*blocks[: MAX_BLOCKS - 1], context(f"{ELLIPSIS} (more than Slack shows in one message)")]
