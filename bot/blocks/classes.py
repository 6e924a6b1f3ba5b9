"""One compact board line per material class: state, score bar, verdict word, the deciding reason.

While the branches run a line shows the specialist's own score; once the recommendation is in it
shows the calibrated score (and, on a re-run, the change against the previous board). Every
line is one line of text: model text is escaped, collapsed to one line and clipped short.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from bot.blocks.kit import ELLIPSIS, clip
from matrec.materials import CLASS_ORDER, MaterialClass
from matrec.progress import BranchState, BranchStatus
from matrec.report import label
from matrec.results import BranchResult, Recommendation
from matrec.schema import BranchAnalysis

WAITING: Final = ":hourglass_flowing_sand:"
RUNNING: Final = ":hourglass:"
FAILED: Final = ":x:"
NOT_RUN: Final = ":heavy_minus_sign:"
RECOMMENDED: Final = ":large_green_circle:"
NOT_RECOMMENDED: Final = ":white_circle:"
SCREENED: Final = ":no_entry:"
BEST: Final = ":first_place_medal:"
RUNNER_UP: Final = ":second_place_medal:"
FLAGGED: Final = ":warning:"

BAR_CELLS: Final = 10
REASON_CHARS: Final = 90  # the deciding reason: short enough that a class stays one line
CONDITION_NAME_CHARS: Final = 40


@dataclass(frozen=True)
class ClassOutcome:
    """What the board says about one class once the recommendation is in."""

    material: MaterialClass
    score: float | None
    rank: str  # "best", "runner-up" or ""
    screen: str | None  # why a hard requirement rules the class out
    screened_by: str  # "its specialist", "the comparison", or "" when nothing screened it out

    @property
    def flagged(self) -> bool:
        """Picked as best or runner-up although it was screened out: shown as a warning, never both."""
        return bool(self.rank and self.screen)


def bar(value: float | None) -> str:
    """A 0-10 score as ten cells; an unknown score as dots."""
    if value is None:
        return "`" + "·" * BAR_CELLS + "`"
    filled = min(max(math.floor(value * BAR_CELLS / 10 + 0.5), 0), BAR_CELLS)  # half up: 6.5 fills 7
    return "`" + "█" * filled + "░" * (BAR_CELLS - filled) + "`"


def score_text(value: float | None) -> str:
    """A score as the board writes it: one decimal at most, `n/a` when unknown."""
    return "n/a" if value is None else f"{round(value, 1):g}"


def condition_name(condition: str | None, index: int) -> str:
    """The short name of an operating condition (its text before ':'), escaped."""
    name = (condition or "").split(":")[0]
    return clip(name, CONDITION_NAME_CHARS) or f"condition {index + 1}"


def specialist_screen(branches: Sequence[BranchResult], material: MaterialClass) -> str | None:
    """The first hard screen a specialist of `material` gave (any operating condition), raw text."""
    for result in branches:
        if result.material is material and result.analysis is not None and result.analysis.hard_screen:
            return result.analysis.hard_screen
    return None


def outcomes(rec: Recommendation) -> list[ClassOutcome]:
    """Each class's final standing, in class order; a picked class is flagged, never "screened out"."""
    aggregator: dict[MaterialClass, str] = {}
    for screened in rec.screened_out:
        aggregator.setdefault(screened.material, screened.reason)
    standings = []
    for material in CLASS_ORDER:
        rank = "best" if material is rec.best else "runner-up" if material is rec.runner_up else ""
        specialist = specialist_screen(rec.branches, material)
        # A picked class is flagged with its specialist's own words; an unpicked one gets the comparison's.
        screen = (specialist or aggregator.get(material)) if rank else (aggregator.get(material) or specialist)
        by = "" if screen is None else "its specialist" if screen == specialist else "the comparison"
        standings.append(ClassOutcome(material, rec.scores.get(material), rank, screen, by))
    return standings


def _analysis(state: BranchState) -> BranchAnalysis | None:
    return state.result.analysis if state.status is BranchStatus.DONE and state.result else None


def _failed(state: BranchState) -> bool:
    return state.status is BranchStatus.FAILED or (state.status is BranchStatus.DONE and _analysis(state) is None)


def _error(results: Sequence[BranchResult | None]) -> str:
    errors = [r.error for r in results if r is not None and r.error]
    return clip(errors[0] if errors else "no reason was given", REASON_CHARS)


def _pending(material: MaterialClass, states: Sequence[BranchState], finished: bool) -> str:
    name = f"*{label(material)}*"
    if finished:
        return f"{NOT_RUN} {name} not assessed (the run ended first)"
    settled = sum(_analysis(s) is not None or _failed(s) for s in states)
    if all(s.status is BranchStatus.QUEUED for s in states):
        return f"{WAITING} {name} waiting"
    if len(states) > 1:
        return f"{RUNNING} {name} analysing{ELLIPSIS} ({settled} of {len(states)} conditions done)"
    return f"{RUNNING} {name} analysing{ELLIPSIS}"


def _conditions_reason(states: Sequence[BranchState]) -> tuple[str, int]:
    """Why a class judged under several conditions stands where it does, and its worst score."""
    named = [(condition_name(s.condition, i), a) for i, s in enumerate(states) if (a := _analysis(s)) is not None]
    recommended = sum(a.recommended for _, a in named)
    worst_name, worst = min(named, key=lambda pair: pair[1].suitability)
    text = f"recommended under {recommended} of {len(named)} conditions · worst: {worst_name} {worst.suitability}"
    return text, worst.suitability


def running_line(material: MaterialClass, states: Sequence[BranchState], *, finished: bool) -> str:
    """A class while the branches run: waiting, analysing, failed, or the specialist's verdict."""
    done = [a for a in map(_analysis, states) if a is not None]
    settled = len(done) + sum(_failed(s) for s in states)
    if not states or (settled < len(states) and not finished) or (not done and settled == 0):
        return _pending(material, states, finished)
    name = f"*{label(material)}*"
    if not done:
        return f"{FAILED} {name} could not be assessed: {_error([s.result for s in states])}"
    if len(states) > 1 or states[0].condition:
        reason, worst = _conditions_reason(states)
        low, high = worst, max(a.suitability for a in done)
        scores = f"{low}" if low == high else f"{low}–{high}"
        screened = any(a.hard_screen for a in done)
        icon = (
            SCREENED
            if screened
            else RECOMMENDED
            if sum(a.recommended for a in done) * 2 > len(done)
            else NOT_RECOMMENDED
        )
        return f"{icon} {name} {bar(low)} *{scores}* · {reason}"
    analysis = done[0]
    head = f"{name} {bar(analysis.suitability)} *{analysis.suitability}*"
    if analysis.hard_screen:
        return f"{SCREENED} {head} · screened out: {clip(analysis.hard_screen, REASON_CHARS)}"
    icon, verdict = (RECOMMENDED, "recommended") if analysis.recommended else (NOT_RECOMMENDED, "not recommended")
    return _joined(
        f"{icon} {head}",
        verdict,
        clip(analysis.summary, REASON_CHARS),
    )


def running_lines(branches: Sequence[BranchState], *, finished: bool) -> list[str]:
    """One line per class, in class order, while the branches run (or after a failed run)."""
    return [
        running_line(material, [s for s in branches if s.material is material], finished=finished)
        for material in CLASS_ORDER
    ]


def _joined(*parts: str) -> str:
    return " · ".join(part for part in parts if part)


def _delta(material: MaterialClass, score: float | None, previous: Recommendation | None) -> str:
    if previous is None or score is None:
        return ""
    before = previous.scores.get(material)
    if before is None:
        return " (new)"
    change = round(score, 1) - round(before, 1)
    return " (±0)" if abs(change) < 0.05 else f" ({change:+.1f})".replace(".0)", ")").replace("-", "−")


def _final_reason(outcome: ClassOutcome, rec: Recommendation) -> str:
    material = outcome.material
    results = [r for r in rec.branches if r.material is material]
    if outcome.flagged:
        return f"picked although {outcome.screened_by} screened it out: {clip(outcome.screen or '', REASON_CHARS)}"
    if outcome.screen and not outcome.rank:
        return f"screened out: {clip(outcome.screen, REASON_CHARS)}"
    analyses = [r.analysis for r in results if r.analysis is not None]
    if not analyses or material in rec.missing:
        return f"could not be assessed: {_error(results)}"
    if len(results) > 1 or results[0].condition:
        states = [
            BranchState(material=material, condition=r.condition, status=BranchStatus.DONE, result=r) for r in results
        ]
        return _conditions_reason(states)[0]
    return clip(analyses[0].summary, REASON_CHARS)


def _final_verdict(outcome: ClassOutcome, rec: Recommendation) -> tuple[str, str]:
    if outcome.flagged:
        return FLAGGED, outcome.rank
    if outcome.rank:
        return (BEST if outcome.rank == "best" else RUNNER_UP), outcome.rank
    if outcome.screen:
        return SCREENED, ""
    analyses = [r.analysis for r in rec.branches if r.material is outcome.material and r.analysis is not None]
    if not analyses or outcome.material in rec.missing or outcome.score is None:
        return FAILED, ""
    recommended = sum(a.recommended for a in analyses) * 2 > len(analyses)
    icon = RECOMMENDED if recommended else NOT_RECOMMENDED
    if len(analyses) > 1:
        return icon, ""  # the reason says under how many conditions it is recommended
    return icon, "recommended" if recommended else "not recommended"


def final_lines(rec: Recommendation, *, previous: Recommendation | None = None) -> list[str]:
    """One line per class once the recommendation is in: calibrated score, rank, deciding reason."""
    lines = []
    for outcome in outcomes(rec):
        icon, verdict = _final_verdict(outcome, rec)
        score = f"*{score_text(outcome.score)}*{_delta(outcome.material, outcome.score, previous)}"
        head = f"{icon} *{label(outcome.material)}* {bar(outcome.score)} {score}"
        lines.append(_joined(head, verdict, _final_reason(outcome, rec)))
    return lines
