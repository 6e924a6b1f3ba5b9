"""The consultation board: one line per class while it runs, the answer first once it is in.

The final board fits one phone screen: at most `MAX_BOARD_LINES` text lines (`block_text_lines`),
the aggregator's reasoning among the first `RATIONALE_WITHIN_LINES`. Every piece has a line
budget (answer <= 7, part and re-run <= 2, classes 6, team 1, similar parts <= 3, footer 1), so
no input can make it taller; what does not fit is in `bot.blocks.details`.
"""

from __future__ import annotations

from typing import Final

from bot.blocks.answer import answer_lines, flag_line, moved_to_details
from bot.blocks.classes import condition_name, final_lines, running_lines, score_text
from bot.blocks.controls import final_controls
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
from bot.blocks.surroundings import part_line, part_name, photos_text, rerun_line, similar_lines, team_line
from bot.board_view import BoardView
from bot.escape import escape
from matrec.choices import Mode, Strategy
from matrec.images import ACCEPTED_FORMATS_TEXT
from matrec.materials import CLASS_ORDER
from matrec.progress import BranchStatus, RunSnapshot, StageStatus
from matrec.report import cost_text, label
from matrec.results import Recommendation

TITLE: Final = "Material consultation"
COMPARING: Final = f":scales: Comparing the classes side by side{ELLIPSIS}"
MAX_BOARD_LINES: Final = 20  # one phone screen
RATIONALE_WITHIN_LINES: Final = 8
CONTEXT_CHARS: Final = 300
CONTEXT_LINES: Final = 3
NOTE_CHARS: Final = 400
ERROR_CHARS: Final = 1_500
FALLBACK_RATIONALE_CHARS: Final = 1_200
RESTART_TIP: Final = "Nothing more runs for this part; post it again to start a new consultation."

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
    snapshot: RunSnapshot | None,
    *,
    part: str,
    context: str,
    mode: Mode = Mode.PARALLEL,
    note: str = "",
    view: BoardView | None = None,
) -> Rendered:
    """The live board; `snapshot` None is the placeholder before the engine starts.

    `note` is one line of ours under the part (queued, resumed after a restart); once the
    recommendation is in, the board is `final_board` and the note has served its purpose.
    """
    if snapshot is not None and snapshot.recommendation is not None:
        return final_board(snapshot.recommendation, part=part, context=context, view=view)
    shown_mode = snapshot.mode if snapshot is not None else mode
    blocks = [header(TITLE), section(_intro(part, context, snapshot, shown_mode, view))]
    if note:
        blocks.append(context_block(clip(note, NOTE_CHARS)))
    blocks.append(divider())
    finished = snapshot is not None and snapshot.finished
    blocks.append(section("\n".join(running_lines(snapshot.branches if snapshot else (), finished=finished))))
    if snapshot is not None:
        blocks.extend(_outcome(snapshot))
    return Rendered(text=_fallback(snapshot, part, shown_mode, note), blocks=capped(blocks))


def final_board(rec: Recommendation, *, part: str, context: str, view: BoardView | None = None) -> Rendered:
    """A finished consultation, answer first, from its Recommendation alone (the branches are in it)."""
    previous = view.previous if view is not None else None
    blocks: list[Block] = [section("\n".join(answer_lines(rec, previous)))]
    about = [part_line(part, context, view)]
    rerun = rerun_line(view, len(_conditions(rec)))
    if rerun:
        about.append(rerun)
    blocks.append(context_block("\n".join(about)))
    blocks.append(divider())
    blocks.append(section("\n".join(final_lines(rec, previous=previous))))
    team = team_line(view)
    if team:
        blocks.append(context_block(team))
    similar = similar_lines(view)
    if similar:
        blocks.append(context_block("\n".join(similar)))
    blocks.append(context_block(_footer(rec, view)))
    if view is not None:
        blocks.extend(final_controls(view, rec.mode))
    return Rendered(
        text=fit(f"{TITLE} for {part_name(part)}: {_verdict_text(rec)}", MAX_FALLBACK_CHARS), blocks=capped(blocks)
    )


def board_error(*, part: str, context: str, message: str) -> Rendered:
    """A consultation that could not run at all: what was wrong, and what is accepted."""
    name = part_name(part)
    problem = clip(message, ERROR_CHARS) or "The image could not be analysed."
    tip = "Add the part's requirements (load, temperature, environment, quantity) in the same message."
    if ACCEPTED_FORMATS_TEXT not in message:
        tip = f"I can analyse a photo of the part as {ACCEPTED_FORMATS_TEXT}. {tip}"
    blocks = [
        header(TITLE),
        section(_intro(part, context, None, Mode.PARALLEL, None, judged=False)),
        section(f":warning: *I could not analyse {name}.*\n{problem}"),
        context_block(f":information_source: {tip}"),
    ]
    text = fit(f"{TITLE} for {name} could not run: {problem}", MAX_FALLBACK_CHARS)
    return Rendered(text=text, blocks=capped(blocks))


def board_cancelled(*, part: str, context: str, reason: str) -> Rendered:
    """A consultation stopped before its answer (its upload was deleted): why, and how to start over."""
    name = part_name(part)
    why = clip(reason, ERROR_CHARS) or "The consultation was cancelled."
    blocks = [
        header(TITLE),
        section(_intro(part, context, None, Mode.PARALLEL, None, judged=False)),
        section(f":no_entry_sign: *No recommendation.* {why}"),
        context_block(f":information_source: {RESTART_TIP}"),
    ]
    text = fit(f"{TITLE} for {name} stopped: {why}", MAX_FALLBACK_CHARS)
    return Rendered(text=text, blocks=capped(blocks))


def _quoted(context: str) -> list[str]:
    lines = clip_lines(context, CONTEXT_CHARS)
    if len(lines) > CONTEXT_LINES:
        lines = [*lines[: CONTEXT_LINES - 1], clip(" ".join(lines[CONTEXT_LINES - 1 :]), CONTEXT_CHARS)]
    return [f"> {line}" for line in lines]


def _intro(
    part: str, context: str, snapshot: RunSnapshot | None, mode: Mode, view: BoardView | None, *, judged: bool = True
) -> str:
    lines = [f":frame_with_picture: *{part_name(part)}*{photos_text(view)}", *_quoted(context)]
    if not judged:
        return "\n".join(lines)
    if len(lines) == 1:
        lines.append("_No requirements given: judged from the photo alone._")
    rerun = rerun_line(view, len(_snapshot_conditions(snapshot)))
    if rerun:
        lines.append(rerun)
    elif mode is Mode.NESTED:
        names = _snapshot_conditions(snapshot)
        lines.append(
            f"_Each class judged under {len(names)} operating conditions: {', '.join(names)}._"
            if names
            else "_Each class judged under several operating conditions._"
        )
    return "\n".join(lines)


def _snapshot_conditions(snapshot: RunSnapshot | None) -> list[str]:
    if snapshot is None or not snapshot.branches:
        return []
    first = [s for s in snapshot.branches if s.material is snapshot.branches[0].material and s.condition]
    return [condition_name(state.condition, index) for index, state in enumerate(first)]


def _conditions(rec: Recommendation) -> list[str]:
    if not rec.branches:
        return []
    first = [r for r in rec.branches if r.material is rec.branches[0].material and r.condition]
    return [condition_name(result.condition, index) for index, result in enumerate(first)]


def _outcome(snapshot: RunSnapshot) -> list[Block]:
    if snapshot.error is not None or snapshot.status is StageStatus.FAILED:
        error = clip(snapshot.error or "", ERROR_CHARS) or "The consultation failed."
        return [section(f":warning: *No recommendation.* {error}")]
    if snapshot.aggregation is StageStatus.RUNNING and not snapshot.finished:
        return [context_block(COMPARING)]
    return []


def _footer(rec: Recommendation, view: BoardView | None) -> str:
    how = _MODE_WORDS[rec.mode]
    conditions = _conditions(rec)
    if rec.mode is Mode.NESTED and conditions:
        how += f" ({', '.join(conditions)})"
    how += f", {_STRATEGY_WORDS[rec.strategy]}"
    # No property figures on the board, so the typical-values caveat and token counts live in Details.
    text = f":stopwatch: {rec.timing.wall_s:.1f} s · {rec.usage.calls} calls · {escape(cost_text(rec))} · {how}."
    moved = moved_to_details(rec)
    if moved:
        text += f" More in the thread: {', '.join(moved)}."  # the job posts `overflow_reply` below the board
    return text


def _verdict_text(rec: Recommendation) -> str:
    runner = f"runner-up {label(rec.runner_up)}, " if rec.runner_up is not None else ""
    scores = ", ".join(f"{label(m)} {score_text(rec.scores.get(m))}" for m in CLASS_ORDER)
    rationale = clip(rec.rationale, FALLBACK_RATIONALE_CHARS)
    flag = flag_line(rec).removeprefix(":warning: ").replace("*", "").rstrip(". ")
    return (
        f"best {label(rec.best)} ({runner}confidence {rec.confidence}). {rationale} {flag + '. ' if flag else ''}"
        f"Scores (1-10): {scores}. Typical class values, not design allowables."
    )


def _fallback(snapshot: RunSnapshot | None, part: str, mode: Mode, note: str = "") -> str:
    lead = f"{TITLE} for {part_name(part)}"
    if snapshot is None and note:
        text = f"{lead}: {clip(note, NOTE_CHARS)}"
    elif snapshot is None:
        text = f"{lead}: starting, {len(CLASS_ORDER)} material classes queued."
    elif snapshot.error is not None or snapshot.status is StageStatus.FAILED:
        text = f"{lead}: no recommendation. {clip(snapshot.error or 'The consultation failed.', ERROR_CHARS)}"
    else:
        text = f"{lead}: {_fallback_progress(snapshot, mode)}"
    return fit(text, MAX_FALLBACK_CHARS)


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
