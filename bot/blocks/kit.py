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
MAX_ACTION_ELEMENTS: Final = 25  # per actions block
MAX_BUTTON_TEXT_CHARS: Final = 75  # also a select option's text
MAX_BUTTON_VALUE_CHARS: Final = 2_000
MAX_OPTION_VALUE_CHARS: Final = 150
MAX_OPTIONS: Final = 100
MAX_PLACEHOLDER_CHARS: Final = 150
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


def plain(text: str, limit: int) -> dict[str, Any]:
    """A plain_text object of our own words (emoji codes shown), cut to `limit` chars."""
    return {"type": "plain_text", "text": fit(text, limit) or ELLIPSIS, "emoji": True}


def button(text: str, action_id: str, value: str, *, style: str | None = None) -> Block:
    """A button; `value` is an id of ours (never cut: a cut id would name something else)."""
    if len(value) > MAX_BUTTON_VALUE_CHARS:
        raise ValueError(f"a button value holds at most {MAX_BUTTON_VALUE_CHARS} chars, got {len(value)}")
    element: Block = {
        "type": "button",
        "text": plain(text, MAX_BUTTON_TEXT_CHARS),
        "action_id": action_id,
        "value": value,
    }
    if style is not None:
        element["style"] = style
    return element


def static_select(placeholder: str, action_id: str, options: list[tuple[str, str]]) -> Block:
    """A static_select of (text, value) options; values are ids of ours, never cut."""
    if any(len(value) > MAX_OPTION_VALUE_CHARS for _, value in options):
        raise ValueError(f"a select option's value holds at most {MAX_OPTION_VALUE_CHARS} chars")
    return {
        "type": "static_select",
        "action_id": action_id,
        "placeholder": plain(placeholder, MAX_PLACEHOLDER_CHARS),
        "options": [
            {"text": plain(text, MAX_BUTTON_TEXT_CHARS), "value": value} for text, value in options[:MAX_OPTIONS]
        ],
    }


def actions(*elements: Block) -> Block:
    """An actions block: a row of buttons and selects."""
    return {"type": "actions", "elements": list(elements[:MAX_ACTION_ELEMENTS])}


def _lines(text: object) -> list[str]:
    return text.split("\n") if isinstance(text, str) and text else []


def _text_of(obj: object) -> list[str]:
    return _lines(obj.get("text")) if isinstance(obj, dict) else []


def text_lines(blocks: list[Block]) -> list[str]:
    """Every text line the blocks show, top to bottom: section text and fields, context elements,
    headers. Buttons and selects are not text lines; a divider has none."""
    lines: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind in ("section", "header"):
            lines.extend(_text_of(block.get("text")))
            for field in block.get("fields", []):
                lines.extend(_text_of(field))
        elif kind == "context":
            for element in block.get("elements", []):
                lines.extend(_text_of(element))
        elif kind == "markdown":
            lines.extend(_lines(block.get("text")))
    return lines


def block_text_lines(blocks: list[Block]) -> int:
    """The board-size measure: how many text lines the blocks show (buttons and selects not counted)."""
    return len(text_lines(blocks))
