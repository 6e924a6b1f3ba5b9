"""The bot's other thread replies: notices, follow-up answers, offers to re-run, help, mute.

Every button's value is an id of ours (see `bot.actions`); every piece of model or user text
is escaped, and an answer longer than one message is split over several.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from bot import actions
from bot.blocks.kit import (
    ELLIPSIS,
    MAX_FALLBACK_CHARS,
    MAX_SECTION_CHARS,
    Block,
    Rendered,
    button,
    clip,
    clip_lines,
    context,
    fit,
    section,
)
from bot.blocks.kit import actions as actions_block
from bot.escape import escape

NOTICE_CHARS: Final = 2_900
ANSWER_SECTION_CHARS: Final = MAX_SECTION_CHARS - 100  # room for the escaping of a cut's lookahead
ANSWER_SECTIONS_PER_MESSAGE: Final = 3  # ~8,700 chars, below a stream chunk's / markdown block's 12,000
CHANGE_CHARS: Final = 150
MAX_CHANGES: Final = 5
DRAFT_CHARS: Final = MAX_FALLBACK_CHARS
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*$", re.MULTILINE)


def notice(message: str) -> Rendered:
    """A short standalone thread reply."""
    text = "\n".join(clip_lines(message, NOTICE_CHARS)) or ELLIPSIS
    return Rendered(text=fit(text, MAX_FALLBACK_CHARS), blocks=[section(text)])


def _changes(changes: Sequence[str]) -> list[str]:
    return [c for c in (clip(change, CHANGE_CHARS) for change in changes[:MAX_CHANGES]) if c]


def _offer_blocks(turn_id: str, changes: Sequence[str]) -> list[Block]:
    listed = _changes(changes)
    text = ":repeat: *This changes the requirements:* " + "; ".join(listed) if listed else ":repeat: Re-run?"
    return [
        context(text),
        actions_block(button("Re-run with these requirements", actions.RERUN_WITH, turn_id, style="primary")),
    ]


def slack_markdown(text: str) -> str:
    """Claude's Markdown bold and headings as Slack mrkdwn bold (`**x**` and `## x` become `*x*`)."""
    return _BOLD.sub(r"*\1*", _HEADING.sub(r"*\1*", text))


def _paragraph_chunks(text: str, limit: int) -> list[str]:
    """`text` (already escaped) in pieces of at most `limit` chars, cut at paragraph, line or word ends."""
    chunks: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        window = rest[:limit]
        cut = window.rfind("\n\n")
        if cut < limit // 2:
            cut = window.rfind("\n")
        if cut < limit // 2:
            cut = window.rfind(" ")
        if cut < limit // 2:
            cut = limit
            amp = window.rfind("&")
            if amp != -1 and ";" not in window[amp:]:
                cut = amp  # never split an entity
        chunks.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        chunks.append(rest)
    return chunks


def followup_answer_final(text: str, *, changes: Sequence[str] = (), turn_id: str | None = None) -> list[Rendered]:
    """A follow-up answer as one or more messages; the last offers the re-run when it proposed changes."""
    chunks = _paragraph_chunks(escape(slack_markdown(text)), ANSWER_SECTION_CHARS) or [ELLIPSIS]
    groups = [chunks[i : i + ANSWER_SECTIONS_PER_MESSAGE] for i in range(0, len(chunks), ANSWER_SECTIONS_PER_MESSAGE)]
    messages = []
    for group in groups:
        body = "\n".join(group)
        messages.append(Rendered(text=fit(body, MAX_FALLBACK_CHARS), blocks=[section(chunk) for chunk in group]))
    if turn_id is not None and _changes(changes):
        last = messages[-1]
        messages[-1] = Rendered(text=last.text, blocks=[*last.blocks, *_offer_blocks(turn_id, changes)])
    return messages


def followup_answer_draft(text: str) -> Rendered:
    """An answer still being written, for the update-in-place fallback: its latest part fits one message."""
    escaped = escape(slack_markdown(text.strip()))
    if len(escaped) > DRAFT_CHARS:
        escaped = ELLIPSIS + _paragraph_chunks(escaped, DRAFT_CHARS - 1)[-1]
    body = escaped + ELLIPSIS if escaped else ELLIPSIS
    return Rendered(text=fit(body, MAX_FALLBACK_CHARS), blocks=[section(fit(body, ANSWER_SECTION_CHARS))])


def rerun_offer(turn_id: str, changes: Sequence[str]) -> Rendered:
    """A standalone offer to re-run with a follow-up's proposed requirement changes."""
    listed = _changes(changes)
    text = "This changes the requirements: " + "; ".join(listed) if listed else "Re-run the consultation?"
    return Rendered(text=fit(text, MAX_FALLBACK_CHARS), blocks=_offer_blocks(turn_id, changes))


DM_HELP: Final = (
    "Send me a photo of a part (JPEG, PNG, GIF, WebP or HEIC) with its requirements, and six specialists "
    "will recommend a material class. Reply in a consultation's thread to ask follow-up questions."
)


def dm_help(channel: str, ts: str) -> Rendered:
    """The reply to DM text that is neither a photo nor a follow-up: help, and a paid run only on request."""
    blocks = [
        section(f":wave: {DM_HELP}"),
        context("No photo? I can judge a written description too: it costs a full consultation, so only on request."),
        actions_block(button("Analyse this description", actions.ANALYSE_TEXT, f"{channel}:{ts}")),
    ]
    return Rendered(text=DM_HELP, blocks=blocks)


def muted_notice(channel: str, thread_ts: str) -> Rendered:
    """Says the bot stays quiet in this thread from now on, with a button to undo it."""
    text = ":zipper_mouth_face: Muted: I will not answer replies in this thread any more."
    blocks = [section(text), actions_block(button("Unmute", actions.UNMUTE, f"{channel}:{thread_ts}"))]
    return Rendered(text="Muted: I will not answer replies in this thread any more.", blocks=blocks)


def photos_added_notice(count: int, consultation_id: str) -> Rendered:
    """Photos replied into a consultation's thread: kept for the next re-run, which the button starts."""
    photos = "1 photo" if count == 1 else f"{count} photos"
    text = f":frame_with_picture: Got {photos} more of this part: the next re-run looks at them too."
    blocks = [section(text), actions_block(button("Re-run now", actions.RERUN, consultation_id, style="primary"))]
    return Rendered(text=f"Got {photos} more of this part: the next re-run looks at them too.", blocks=blocks)


def edited_offer(consultation_id: str) -> Rendered:
    """The upload's text was edited: offer a re-run with the new requirements."""
    text = ":pencil2: The requirements were edited. Re-run the consultation with the new text?"
    blocks = [section(text), actions_block(button("Re-run with the edit", actions.RERUN_EDITED, consultation_id))]
    return Rendered(text="The requirements were edited. Re-run the consultation with the new text?", blocks=blocks)
