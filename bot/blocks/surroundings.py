"""The board's lines about its surroundings: the part, what a re-run changed, the team, similar parts.

Each function returns finished mrkdwn lines (user text escaped and clipped, names never
mentions), one line per item, so `bot.blocks.board` can count them against the phone-screen
budget.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from bot.blocks.kit import clip
from bot.board_view import BoardView, SimilarLink
from matrec.materials import CLASS_ORDER, MaterialClass
from matrec.report import label

PART_CHARS: Final = 80
REQUIREMENTS_CHARS: Final = 150
CHANGES_CHARS: Final = 200
MAX_SIMILAR: Final = 3
WHO_CHARS: Final = 40
SIMILAR_PART_CHARS: Final = 60
OUTCOME_CHARS: Final = 60
# A permalink Slack gave us (a thread reply's carries "?thread_ts=…&cid=…"): https, no spaces and
# none of the characters that end or split a link.
_SAFE_LINK = re.compile(r"https://[^\s<>|]+")

RERUN: Final = "rerun"
STRESS: Final = "stress"


def part_name(part: str) -> str:
    """The part's name (escaped, clipped), or "the image"."""
    return clip(part, PART_CHARS) or "the image"


def photos_text(view: BoardView | None) -> str:
    """ " (3 photos)" for a part photographed several times, else ""."""
    return f" ({view.photos} photos)" if view is not None and view.photos > 1 else ""


def part_line(part: str, context: str, view: BoardView | None) -> str:
    """One line: the part, and what it is for (the requirements, or that the photo alone was judged)."""
    requirements = clip(context, REQUIREMENTS_CHARS)
    about = f"_{requirements}_" if requirements else "_judged from the photo alone_"
    return f":frame_with_picture: *{part_name(part)}*{photos_text(view)} · {about}"


def rerun_line(view: BoardView | None, conditions: int = 0) -> str:
    """What kind of re-run this board is and which requirements it added, or "" for a first run."""
    if view is None or view.kind not in (RERUN, STRESS):
        return ""
    changes = clip("; ".join(c for c in view.changes if c.strip()), CHANGES_CHARS)
    if view.kind == STRESS:
        under = f"{conditions} operating conditions" if conditions else "several operating conditions"
        added = f" · added: {changes}" if changes else ""
        return f":microscope: *Stress test*: each class judged under {under}{added}"
    if changes:
        return f":repeat: *Re-run* with: {changes}"
    return ":repeat: *Re-run* with the same requirements"


def _counted(choices: Mapping[MaterialClass, int]) -> list[tuple[MaterialClass, int]]:
    counted = [(m, choices.get(m, 0)) for m in CLASS_ORDER if choices.get(m, 0) > 0]
    return sorted(counted, key=lambda pair: -pair[1])  # stable: ties keep class order


def team_line(view: BoardView | None) -> str:
    """ "Team chose: Polymer ×2, Metal ×1 · 3 found it helpful, 1 not", or "" before any feedback."""
    if view is None:
        return ""
    parts = []
    counted = _counted(view.choices)
    if counted:
        parts.append("Team chose: " + ", ".join(f"{label(m)} ×{n}" for m, n in counted))
    helpful, not_helpful = view.ratings
    if helpful or not_helpful:
        ratings = [f"{helpful} found it helpful"] if helpful else []
        if not_helpful:
            ratings.append(f"{not_helpful} not" if helpful else f"{not_helpful} found it not helpful")
        parts.append(", ".join(ratings))
    return f":busts_in_silhouette: {' · '.join(parts)}" if parts else ""


def _date(link: SimilarLink) -> str:
    when = f"{link.when.day} {link.when:%b %Y}"
    if link.link is not None and _SAFE_LINK.fullmatch(link.link):
        return f"<{link.link}|{when}>"  # our own permalink; every other piece of the line is escaped
    return when


def similar_lines(view: BoardView | None) -> list[str]:
    """Up to three earlier consultations of similar parts, names as plain text (never a ping)."""
    if view is None:
        return []
    lines = []
    for link in view.similar[:MAX_SIMILAR]:
        who = clip(link.who, WHO_CHARS) or "Someone"
        part = clip(link.part, SIMILAR_PART_CHARS) or "a similar part"
        outcome = clip(link.outcome, OUTCOME_CHARS)
        line = f":mag: {who} looked at a similar part on {_date(link)}: {part}"
        lines.append(f"{line}; {outcome}" if outcome else line)
    return lines
