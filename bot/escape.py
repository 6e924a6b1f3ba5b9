"""Escaping for Slack mrkdwn: model or user text that can never ping anyone or hide a link."""

from __future__ import annotations

import re
from typing import Final

WORD_JOINER: Final = "\u2060"  # invisible; splits "@here" so no client or parser sees a mention

# Slack's control characters: `<...>` is how mentions, channel links and masked links are written.
_ENTITIES: Final = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_CONTROL = re.compile("[&<>]")
# Plain-text mass mentions are parsed only when `link_names` or non-verbatim parsing is on; defuse
# them anyway, and every word that merely starts like one (`@heres`), since that costs nothing.
_MASS_MENTION = re.compile(r"@(?=(?:channel|here|everyone))", re.IGNORECASE)


def escape(text: str) -> str:
    """Make model or user text safe for Slack mrkdwn: it can never ping or link."""
    escaped = _CONTROL.sub(lambda match: _ENTITIES[match.group()], text)
    return _MASS_MENTION.sub("@" + WORD_JOINER, escaped)
