"""Slack message text as plain text: the part's requirements, without mention markup or entities."""

from __future__ import annotations

import html
import re

_ENTITY = re.compile(r"<([^<>]+)>")


def _readable(inner: str, bot_user_id: str) -> str:
    target, _, label = inner.partition("|")
    if target == f"@{bot_user_id}":
        return ""
    if target.startswith(("@", "#")):
        return label or target  # a person or channel: their name when Slack gave it
    if target.startswith("!"):
        return label or ""  # special mentions (@here, @channel, dates): never passed on as markup
    return f"{label} ({target})" if label and label != target else target  # a link


def plain_text(text: str, bot_user_id: str) -> str:
    """Decode Slack's markup: drop the bot's own mention, unwrap links and names, unescape entities."""
    unwrapped = _ENTITY.sub(lambda match: _readable(match.group(1), bot_user_id), text)
    return " ".join(html.unescape(unwrapped).split())


def mentions(text: str, bot_user_id: str) -> bool:
    """Whether the text mentions the bot."""
    return f"<@{bot_user_id}>" in text or f"<@{bot_user_id}|" in text
