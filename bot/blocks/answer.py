"""The answer at the top of a final board: best, runner-up, confidence, why, flags and questions.

Budgeted in lines, so the aggregator's reasoning always sits within the first lines of the board:
one verdict line, the rationale in at most `RATIONALE_LINES` sentence lines, one flag line, at
most `BOARD_QUESTIONS` question lines. What is cut here is posted in full by `bot.blocks.details`.
"""

from __future__ import annotations

import re
from typing import Final

from bot.blocks.classes import FLAGGED, outcomes
from bot.blocks.kit import ELLIPSIS, MAX_FALLBACK_CHARS, Rendered, capped, clip, fit, section
from bot.escape import escape
from matrec.report import label
from matrec.results import Recommendation

OVERFLOW_TITLE: Final = "*The rest of this recommendation*"
OVERFLOW_RATIONALE_CHARS: Final = 2_800  # one section's worth
OVERFLOW_ITEM_CHARS: Final = 400
RATIONALE_CHARS: Final = 420  # about three sentences: what one phone screen holds beside the scores
RATIONALE_LINES: Final = 3
BOARD_QUESTIONS: Final = 2
QUESTION_CHARS: Final = 140
FLAG_REASON_CHARS: Final = 80
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")


def verdict_line(rec: Recommendation, previous: Recommendation | None = None) -> str:
    """`:trophy: *Best: Metal* · runner-up *Polymer* · confidence *medium*`, with what a re-run changed."""
    was = ""
    if previous is not None:
        was = " (kept)" if previous.best is rec.best else f" (was {label(previous.best)})"
    runner = f" · runner-up *{label(rec.runner_up)}*" if rec.runner_up is not None else ""
    return f":trophy: *Best: {label(rec.best)}*{was}{runner} · confidence *{rec.confidence}*"


def rationale_lines(rec: Recommendation) -> list[str]:
    """The aggregator's reasoning, escaped, in at most three lines (a sentence each, the rest joined)."""
    text = clip(rec.rationale, RATIONALE_CHARS)
    sentences = _SENTENCE_END.split(text) if text else []
    if len(sentences) > RATIONALE_LINES:
        sentences = [*sentences[: RATIONALE_LINES - 1], " ".join(sentences[RATIONALE_LINES - 1 :])]
    return sentences


def rationale_cut(rec: Recommendation) -> bool:
    """Whether the board shows less of the rationale than there is."""
    return clip(rec.rationale, RATIONALE_CHARS) != escape(" ".join(rec.rationale.split()))


def flag_line(rec: Recommendation) -> str:
    """One line naming each picked class whose specialist screened it out, or "" when none is."""
    flagged = [o for o in outcomes(rec) if o.flagged]
    if not flagged:
        return ""
    parts = [
        f"*{label(o.material)}* was picked although {o.screened_by} screened it out: "
        f"{clip(o.screen or '', FLAG_REASON_CHARS)}"
        for o in flagged
    ]
    return f"{FLAGGED} {'; '.join(parts)}"


def question_lines(rec: Recommendation) -> list[str]:
    """The first questions that would sharpen the choice, one line each."""
    questions = [q for q in (clip(q, QUESTION_CHARS) for q in rec.questions) if q]
    return [f":question: {q}" for q in questions[:BOARD_QUESTIONS]]


def moved_to_details(rec: Recommendation) -> list[str]:
    """What the board leaves out and the Details replies carry: "the full reasoning", "2 notes"..."""
    moved = []
    if rationale_cut(rec):
        moved.append("the full reasoning")
    questions = [q for q in rec.questions if q.strip()]
    extra = len(questions) - BOARD_QUESTIONS
    if extra > 0:
        moved.append("1 more question" if extra == 1 else f"{extra} more questions")
    notes = [n for n in rec.notes if n.strip()]
    if notes:
        moved.append("1 note" if len(notes) == 1 else f"{len(notes)} notes")
    return moved


def answer_lines(rec: Recommendation, previous: Recommendation | None = None) -> list[str]:
    """The verdict, rationale, flag and questions: at most 1 + 3 + 1 + 2 lines."""
    lines = [verdict_line(rec, previous), *rationale_lines(rec)]
    flag = flag_line(rec)
    if flag:
        lines.append(flag)
    lines.extend(question_lines(rec))
    return [line or ELLIPSIS for line in lines]


def overflow_reply(rec: Recommendation) -> Rendered | None:
    """What the final board left out (`moved_to_details`) as one thread reply; None when nothing was.

    The board fits one phone screen; the full reasoning, the other questions and the notes follow
    it in the thread, so nobody has to open Details to read the whole answer.
    """
    if not moved_to_details(rec):
        return None
    sections = [section(OVERFLOW_TITLE)]
    if rationale_cut(rec):
        sections.append(section(clip(rec.rationale, OVERFLOW_RATIONALE_CHARS)))
    questions = [q for q in (clip(q, OVERFLOW_ITEM_CHARS) for q in rec.questions) if q][BOARD_QUESTIONS:]
    notes = [n for n in (clip(n, OVERFLOW_ITEM_CHARS) for n in rec.notes) if n]
    items = [f":question: {q}" for q in questions] + [f":information_source: {n}" for n in notes]
    if items:
        sections.append(section(clip_joined(items)))
    text = fit(f"The rest of the recommendation (best: {label(rec.best)}).", MAX_FALLBACK_CHARS)
    return Rendered(text=text, blocks=capped(sections))


def clip_joined(items: list[str]) -> str:
    """Lines joined within one section's budget; lines that do not fit are counted, not cut mid-way."""
    kept: list[str] = []
    used = 0
    for item in items:
        if used + len(item) + 1 > OVERFLOW_RATIONALE_CHARS:
            kept.append(f"_{len(items) - len(kept)} more not shown._")
            break
        kept.append(item)
        used += len(item) + 1
    return "\n".join(kept)
