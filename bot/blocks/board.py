"""The consultation board and the bot's other replies as Block Kit, with a plain text fallback.

Pure functions: the same input always renders the same message. Model and user text is escaped
(`bot.escape`) and clipped to a budget, so no rendering can ping, link, or break Slack's limits
(`bot.blocks_kit`): <= 50 blocks, <= 3,000 chars per section, a fallback text <= 3,900 chars.
"""

from __future__ import annotations

import math
from typing import Final

from bot.blocks.classes import class_texts, condition_name
from bot.blocks.kit import (
    ELLIPSIS,
    MAX_FALLBACK_CHARS,
    Block,
    Rendered,
    capped,
    clip,
    clip_lines,
    divider,
    fit,
    header,
    section,
)
from bot.blocks.kit import context as context_block
from bot.escape import escape
from matrec.choices import Mode, Strategy
from matrec.images import ACCEPTED_FORMATS_TEXT
from matrec.materials import CLASS_ORDER, MaterialClass
from matrec.progress import BranchStatus, RunSnapshot, StageStatus
from matrec.report import footer, label
from matrec.results import Recommendation

TITLE: Final = "Material consultation"
COMPARING: Final = f":scales: Comparing the classes side by side{ELLIPSIS}"
PART_CHARS: Final = 200
CONTEXT_CHARS: Final = 300
RATIONALE_CHARS: Final = 1_500
SCREEN_REASON_CHARS: Final = 200
QUESTION_CHARS: Final = 250
MAX_QUESTIONS: Final = 3
NOTE_CHARS: Final = 400
MAX_NOTES: Final = 3
ERROR_CHARS: Final = 1_500
NOTICE_CHARS: Final = 2_900
FALLBACK_RATIONALE_CHARS: Final = 1_200
BAR_CELLS: Final = 10

_MODE_WORDS: Final = {
    Mode.PARALLEL: "six specialists in parallel",
    Mode.NESTED: "six specialists per operating condition",
    Mode.SINGLE: "one combined prompt",
}
_STRATEGY_WORDS: Final = {
    Strategy.CLAUDE: "compared side by side by Claude",
    Strategy.VOTE: "majority vote",
    Strategy.WEIGHTED: "weighted dimension scores",
}


def queued_note(ahead: int) -> str:
    """The board's note while a consultation waits for its turn."""
    others = "1 consultation is" if ahead == 1 else f"{ahead} consultations are"
    if ahead == 0:
        return f":hourglass_flowing_sand: Queued: next in line; it starts by itself{ELLIPSIS}"
    return f":hourglass_flowing_sand: Queued: {others} ahead of this one; it starts by itself."


def board(
    snapshot: RunSnapshot | None, *, part: str, context: str, mode: Mode = Mode.PARALLEL, note: str = ""
) -> Rendered:
    """The live consultation board; `snapshot` None is the placeholder before the engine starts.

    `note` is one line of ours under the part (queued, resumed after a restart).
    """
    shown_mode = snapshot.mode if snapshot is not None else mode
    blocks = [header(TITLE), section(_intro(part, context, snapshot, shown_mode))]
    if note:
        blocks.append(context_block(clip(note, NOTE_CHARS)))
    blocks.append(divider())
    recommendation = snapshot.recommendation if snapshot is not None else None
    texts = class_texts(
        snapshot.branches if snapshot is not None else (),
        nested=shown_mode is Mode.NESTED,
        finished=snapshot is not None and snapshot.finished,
        ranks=_ranks(recommendation) if recommendation is not None else {},
    )
    blocks.extend(section(text) for text in texts)
    if snapshot is not None:
        blocks.extend(_outcome(snapshot))
    return Rendered(text=_fallback(snapshot, part, shown_mode, note), blocks=capped(blocks))


def board_error(*, part: str, context: str, message: str) -> Rendered:
    """A consultation that could not run at all: what was wrong, and what is accepted."""
    name = _part(part)
    problem = clip(message, ERROR_CHARS) or "The image could not be analysed."
    tip = "Add the part's requirements (load, temperature, environment, quantity) in the same message."
    if ACCEPTED_FORMATS_TEXT not in message:
        tip = f"I can analyse a photo of the part as {ACCEPTED_FORMATS_TEXT}. {tip}"
    blocks = [
        header(TITLE),
        section(_intro(part, context, None, Mode.PARALLEL, judged=False)),
        section(f":warning: *I could not analyse {name}.*\n{problem}"),
        context_block(f":information_source: {tip}"),
    ]
    text = fit(f"{TITLE} for {name} could not run: {problem}", MAX_FALLBACK_CHARS)
    return Rendered(text=text, blocks=capped(blocks))


def notice(message: str) -> Rendered:
    """A short standalone thread reply."""
    text = "\n".join(clip_lines(message, NOTICE_CHARS)) or ELLIPSIS
    return Rendered(text=fit(text, MAX_FALLBACK_CHARS), blocks=[section(text)])


def _part(part: str) -> str:
    return clip(part, PART_CHARS) or "the image"


def _intro(part: str, context: str, snapshot: RunSnapshot | None, mode: Mode, *, judged: bool = True) -> str:
    lines = [f":frame_with_picture: *{_part(part)}*"]
    quoted = clip_lines(context, CONTEXT_CHARS)
    lines.extend(f"> {line}" for line in quoted)
    if not judged:
        return "\n".join(lines)
    if not quoted:
        lines.append("_No requirements given: judged from the photo alone._")
    if mode is Mode.NESTED:
        names = _condition_names(snapshot)
        lines.append(
            f"_Each class judged under {len(names)} operating conditions: {', '.join(names)}._"
            if names
            else "_Each class judged under several operating conditions._"
        )
    return "\n".join(lines)


def _condition_names(snapshot: RunSnapshot | None) -> list[str]:
    if snapshot is None:
        return []
    first = [state for state in snapshot.branches if state.material is snapshot.branches[0].material]
    return [condition_name(state.condition, index) for index, state in enumerate(first)]


def _ranks(rec: Recommendation) -> dict[MaterialClass, str]:
    ranks = {rec.best: " · :first_place_medal: best"}
    if rec.runner_up is not None and rec.runner_up is not rec.best:
        ranks[rec.runner_up] = " · :second_place_medal: runner-up"
    return ranks


def _outcome(snapshot: RunSnapshot) -> list[Block]:
    rec = snapshot.recommendation
    if rec is not None:
        return [divider(), *_recommendation(rec)]
    if snapshot.error is not None or snapshot.status is StageStatus.FAILED:
        error = clip(snapshot.error or "", ERROR_CHARS) or "The consultation failed."
        return [divider(), section(f":warning: *No recommendation.* {error}")]
    if snapshot.aggregation is StageStatus.RUNNING and not snapshot.finished:
        return [divider(), section(COMPARING)]
    return []


def _recommendation(rec: Recommendation) -> list[Block]:
    runner = f" · runner-up *{label(rec.runner_up)}*" if rec.runner_up is not None else ""
    verdict = f":trophy: *Best: {label(rec.best)}*{runner} · confidence *{rec.confidence}*"
    rationale = clip(rec.rationale, RATIONALE_CHARS)
    blocks = [section(f"{verdict}\n{rationale}" if rationale else verdict), section(_scores(rec))]
    extras = _extras(rec)
    if extras:
        blocks.append(section(extras))
    how = f"{_MODE_WORDS[rec.mode]}, {_STRATEGY_WORDS[rec.strategy]}"
    blocks.append(context_block(f":stopwatch: {escape(footer(rec))}", how))
    return blocks


def _score(value: float | None) -> str:
    return "n/a" if value is None else f"{round(value, 1):g}"


def _bar(value: float | None) -> str:
    if value is None:
        return "`" + "·" * BAR_CELLS + "`"
    filled = min(max(math.floor(value * BAR_CELLS / 10 + 0.5), 0), BAR_CELLS)  # half up: 6.5 fills 7
    return "`" + "█" * filled + "░" * (BAR_CELLS - filled) + "`"


def _scores(rec: Recommendation) -> str:
    screens: dict[MaterialClass, str] = {}
    for screen in rec.screened_out:
        screens.setdefault(screen.material, screen.reason)
    ranks = _ranks(rec)

    def order(material: MaterialClass) -> tuple[float, int]:
        value = rec.scores.get(material)
        return (-value if value is not None else float("inf"), CLASS_ORDER.index(material))

    lines = ["*Calibrated scores* (1-10, classes compared side by side)"]
    for material in sorted(CLASS_ORDER, key=order):
        value = rec.scores.get(material)
        line = f"{_bar(value)} *{_score(value)}* {label(material)}{ranks.get(material, '')}"
        if material in screens:
            line += f" · :no_entry: screened out: {clip(screens[material], SCREEN_REASON_CHARS)}"
        if material in rec.missing or value is None:
            line += " · could not be assessed"
        lines.append(line)
    return "\n".join(lines)


def _extras(rec: Recommendation) -> str:
    lines: list[str] = []
    questions = [text for text in (clip(q, QUESTION_CHARS) for q in rec.questions[:MAX_QUESTIONS]) if text]
    if questions:
        lines.append(":question: *Questions that would sharpen this:*")
        lines.extend(f"• {question}" for question in questions)
    notes = [text for text in (clip(note, NOTE_CHARS) for note in rec.notes) if text]
    lines.extend(f":information_source: {note}" for note in notes[:MAX_NOTES])
    if len(notes) > MAX_NOTES:
        lines.append(f"_{len(notes) - MAX_NOTES} more notes not shown._")
    return "\n".join(lines)


def _fallback(snapshot: RunSnapshot | None, part: str, mode: Mode, note: str = "") -> str:
    lead = f"{TITLE} for {_part(part)}"
    if snapshot is None and note:
        text = f"{lead}: {clip(note, NOTE_CHARS)}"
    elif snapshot is None:
        text = f"{lead}: starting, {len(CLASS_ORDER)} material classes queued."
    elif snapshot.recommendation is not None:
        text = f"{lead}: {_fallback_verdict(snapshot.recommendation)}"
    elif snapshot.error is not None or snapshot.status is StageStatus.FAILED:
        text = f"{lead}: no recommendation. {clip(snapshot.error or 'The consultation failed.', ERROR_CHARS)}"
    else:
        text = f"{lead}: {_fallback_progress(snapshot, mode)}"
    return fit(text, MAX_FALLBACK_CHARS)


def _fallback_verdict(rec: Recommendation) -> str:
    runner = f"runner-up {label(rec.runner_up)}, " if rec.runner_up is not None else ""
    scores = ", ".join(f"{label(m)} {_score(rec.scores.get(m))}" for m in CLASS_ORDER)
    rationale = clip(rec.rationale, FALLBACK_RATIONALE_CHARS)
    return (
        f"best {label(rec.best)} ({runner}confidence {rec.confidence}). {rationale} "
        f"Scores (1-10): {scores}. Typical class values, not design allowables."
    )


def _fallback_progress(snapshot: RunSnapshot, mode: Mode) -> str:
    branches = snapshot.branches
    done = sum(state.status is BranchStatus.DONE for state in branches)
    failed = sum(state.status is BranchStatus.FAILED for state in branches)
    unit = "analyses" if mode is Mode.NESTED else "classes"
    text = f"{done + failed}/{len(branches)} {unit} done"
    if failed:
        text += f", {failed} could not be assessed"
    if snapshot.aggregation is StageStatus.RUNNING:
        text += f"; comparing the classes side by side{ELLIPSIS}"
    return text + "."
