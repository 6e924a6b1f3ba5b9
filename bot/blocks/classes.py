"""One board line per material class: its state, and once done what the specialist concluded.

Returns mrkdwn strings (all model text escaped and clipped); `bot.blocks` wraps them in sections.
Each text stays well under a section's 3,000 chars by construction: every part has its own budget.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from bot.blocks.kit import ELLIPSIS, clip
from matrec.materials import CLASS_ORDER, MaterialClass
from matrec.progress import BranchState, BranchStatus
from matrec.report import label
from matrec.schema import BranchAnalysis

WAITING: Final = ":hourglass_flowing_sand:"
RUNNING: Final = ":hourglass:"
FAILED: Final = ":x:"
NOT_RUN: Final = ":heavy_minus_sign:"
RECOMMENDED: Final = ":large_green_circle:"
NOT_RECOMMENDED: Final = ":white_circle:"
SCREENED: Final = ":no_entry:"

MAX_LIST_ITEMS: Final = 3
SUMMARY_CHARS: Final = 400
ITEM_CHARS: Final = 120
GRADE_CHARS: Final = 60
SCREEN_CHARS: Final = 300
REASON_CHARS: Final = 400
CONDITION_REASON_CHARS: Final = 200
CONDITION_NAME_CHARS: Final = 40
CONDITIONS_LINE_CHARS: Final = 1_000
MAX_FAILURE_LINES: Final = 3


def class_texts(
    branches: Sequence[BranchState],
    *,
    nested: bool,
    finished: bool,
    ranks: Mapping[MaterialClass, str],
) -> list[str]:
    """One mrkdwn text per class, in class order; `ranks` adds e.g. "best" to a class's first line."""
    texts = []
    for material in CLASS_ORDER:
        states = [state for state in branches if state.material is material]
        rank = ranks.get(material, "")
        if nested or len(states) > 1 or any(state.condition for state in states):
            texts.append(_conditions_text(material, states, finished, rank))
        else:
            texts.append(_branch_text(material, states[0] if states else None, finished, rank))
    return texts


def condition_name(condition: str | None, index: int) -> str:
    """The short name of an operating condition (its text before ':'), escaped."""
    name = (condition or "").split(":")[0]
    return clip(name, CONDITION_NAME_CHARS) or f"condition {index + 1}"


def _analysis(state: BranchState) -> BranchAnalysis | None:
    return state.result.analysis if state.status is BranchStatus.DONE and state.result else None


def _failed(state: BranchState) -> bool:
    return state.status is BranchStatus.FAILED or (state.status is BranchStatus.DONE and _analysis(state) is None)


def _reason(state: BranchState, limit: int = REASON_CHARS) -> str:
    error = state.result.error if state.result else None
    return clip(error or "no reason was given", limit)


def _pending_text(material: MaterialClass, status: BranchStatus, finished: bool) -> str:
    name = f"*{label(material)}*"
    if finished:
        return f"{NOT_RUN} {name} not assessed (the run ended first)"
    if status is BranchStatus.RUNNING:
        return f"{RUNNING} {name} analysing{ELLIPSIS}"
    return f"{WAITING} {name} waiting"


def _items(items: Sequence[str], limit: int, separator: str) -> str:
    return separator.join(text for text in (clip(item, limit) for item in items[:MAX_LIST_ITEMS]) if text)


def _branch_text(material: MaterialClass, state: BranchState | None, finished: bool, rank: str) -> str:
    if state is None:
        return _pending_text(material, BranchStatus.QUEUED, finished)
    if _failed(state):
        return f"{FAILED} *{label(material)}* could not be assessed: {_reason(state)}"
    analysis = _analysis(state)
    if analysis is None:
        return _pending_text(material, state.status, finished)
    icon = SCREENED if analysis.hard_screen else RECOMMENDED if analysis.recommended else NOT_RECOMMENDED
    verdict = "recommended" if analysis.recommended else "not recommended"
    lines = [f"{icon} *{label(material)}* · *{analysis.suitability}/10* · {verdict}{rank}"]
    summary = clip(analysis.summary, SUMMARY_CHARS)
    if summary:
        lines.append(summary)
    for title, items, limit, separator in (
        ("Strengths", analysis.strengths, ITEM_CHARS, " · "),
        ("Concerns", analysis.concerns, ITEM_CHARS, " · "),
        ("Grades", analysis.example_grades, GRADE_CHARS, ", "),
    ):
        text = _items(items, limit, separator)
        if text:
            lines.append(f"*{title}:* {text}")
    if analysis.hard_screen:
        lines.append(f"{SCREENED} *Hard screen:* {clip(analysis.hard_screen, SCREEN_CHARS)}")
    return "\n".join(lines)


def _condition_token(state: BranchState, index: int, finished: bool) -> str:
    name = condition_name(state.condition, index)
    analysis = _analysis(state)
    if analysis is not None:
        return f"{name} *{analysis.suitability}*"
    if _failed(state):
        return f"{name} {FAILED}"
    if finished:
        return f"{name} –"
    return f"{name} {RUNNING if state.status is BranchStatus.RUNNING else WAITING}"


def _conditions_line(states: Sequence[BranchState], finished: bool) -> str:
    tokens: list[str] = []
    used = 0
    for index, state in enumerate(states):
        token = _condition_token(state, index, finished)
        if used + len(token) > CONDITIONS_LINE_CHARS:
            tokens.append(ELLIPSIS)
            break
        tokens.append(token)
        used += len(token) + 3
    return " · ".join(tokens)


def _conditions_headline(material: MaterialClass, states: Sequence[BranchState], finished: bool) -> str:
    name = f"*{label(material)}*"
    done = [a for a in map(_analysis, states) if a is not None]
    failed = [s for s in states if _failed(s)]
    settled = len(done) + len(failed)
    if not states or (settled < len(states) and not finished):
        if settled == 0 and all(s.status is BranchStatus.QUEUED for s in states):
            return _pending_text(material, BranchStatus.QUEUED, finished)
        return f"{RUNNING} {name} analysing{ELLIPSIS} ({settled} of {len(states)} conditions done)"
    if not done:
        if not failed:
            return _pending_text(material, BranchStatus.QUEUED, finished)
        return f"{FAILED} {name} could not be assessed: {_reason(failed[0])}"
    recommended = sum(a.recommended for a in done)
    icon = (
        SCREENED
        if any(a.hard_screen for a in done)
        else RECOMMENDED
        if recommended * 2 > len(done)
        else NOT_RECOMMENDED
    )
    low, high = min(a.suitability for a in done), max(a.suitability for a in done)
    scores = f"{low}/10" if low == high else f"{low}–{high}/10"
    return f"{icon} {name} · *{scores}* · recommended under {recommended} of {len(done)} conditions"


def _conditions_text(material: MaterialClass, states: Sequence[BranchState], finished: bool, rank: str) -> str:
    headline = _conditions_headline(material, states, finished)
    if not states:
        return headline
    lines = [
        headline + (rank if any(_analysis(s) for s in states) else ""),
        _conditions_line(states, finished),
    ]
    named = [(condition_name(s.condition, i), s) for i, s in enumerate(states)]
    scored = [(name, a) for name, s in named if (a := _analysis(s)) is not None]
    if scored:
        worst_name, worst = min(scored, key=lambda pair: pair[1].suitability)
        concern = clip(worst.concerns[0], ITEM_CHARS) if worst.concerns else ""
        if concern:
            lines.append(f"*Worst concern* ({worst_name}): {concern}")
        screened = next(((name, a.hard_screen) for name, a in scored if a.hard_screen), None)
        if screened is not None:
            lines.append(f"{SCREENED} *Hard screen* ({screened[0]}): {clip(screened[1], SCREEN_CHARS)}")
    failures = [(name, s) for name, s in named if _failed(s)]
    if scored or (len(failures) < len(states) and not finished):  # else the headline gives the reason
        for name, state in failures[:MAX_FAILURE_LINES]:
            lines.append(f"{FAILED} {name}: {_reason(state, CONDITION_REASON_CHARS)}")
    return "\n".join(lines)
