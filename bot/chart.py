"""The score chart posted into a consultation's thread with its final board: six calibrated scores.

A PNG sized and lettered for a phone (large fonts, one bar per class, the best highlighted,
screened-out and unassessed classes marked), with alt text that lists every score for screen
readers. matplotlib is imported inside `score_chart` and draws on an Agg canvas (no GUI, no
display), so the bot's start-up does not pay for it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Final

from bot.blocks.classes import ClassOutcome, outcomes, score_text
from matrec.report import label
from matrec.results import Recommendation

WIDTH_IN: Final = 6.0
HEIGHT_IN: Final = 4.0
DPI: Final = 150  # 900 x 600 px: sharp on a phone, a few tens of kB
FONT_PT: Final = 14
TITLE_PT: Final = 15
MAX_ALT_TEXT_CHARS: Final = 1_000
MAX_TITLE_CHARS: Final = 120
PART_CHARS: Final = 60
BEST_COLOUR: Final = "#2e7d32"
RUNNER_UP_COLOUR: Final = "#81c784"
OTHER_COLOUR: Final = "#90a4ae"
SCREENED_COLOUR: Final = "#e57373"
MISSING_TEXT_COLOUR: Final = "#757575"
FLAG_TEXT_COLOUR: Final = "#c62828"
X_MAX: Final = 14.5


@dataclass(frozen=True)
class Chart:
    """A PNG, the alt text a screen reader speaks, and the file's title."""

    png: bytes
    alt_text: str
    title: str


def _clipped(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _status(rank: str, screened: bool, flagged: bool, score: float | None, *, short: bool = False) -> str:
    if score is None:
        return "not assessed"
    if flagged:
        return f"{rank} (!)" if short else f"{rank}, although screened out"
    if rank:
        return rank
    return "screened out" if screened else ""


def alt_text(rec: Recommendation) -> str:
    """Every class's calibrated score in words, best first named."""
    parts = []
    for o in outcomes(rec):
        status = _status(o.rank, o.screen is not None, o.flagged, o.score)
        value = "no score" if o.score is None else f"{score_text(o.score)} of 10"
        parts.append(f"{label(o.material)} {value}" + (f" ({status})" if status and o.score is not None else ""))
    text = (
        f"Bar chart of calibrated suitability scores (0 to 10) for {_clipped(rec.part, PART_CHARS)}: "
        f"{'; '.join(parts)}. Best: {label(rec.best)}."
    )
    return _clipped(text, MAX_ALT_TEXT_CHARS)


def score_chart(rec: Recommendation) -> Chart:
    """The six calibrated scores as horizontal bars, best on top, as a phone-readable PNG."""
    # The object API with an explicit Agg canvas: no pyplot, no global backend state, no window,
    # so charts may be drawn in worker threads side by side.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    order = sorted(outcomes(rec), key=lambda o: (o.score is None, -(o.score or 0.0)))
    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    FigureCanvasAgg(figure)  # attaches itself to the figure
    axes = figure.add_subplot()
    positions = list(range(len(order)))[::-1]  # the highest score at the top
    axes.barh(positions, [o.score or 0.0 for o in order], color=[_colour(o) for o in order], height=0.7)
    axes.set_yticks(positions, [label(o.material) for o in order], fontsize=FONT_PT)
    axes.set_xlim(0, X_MAX)  # room right of a full bar for its label
    axes.set_xticks(range(0, 11, 2))
    axes.tick_params(axis="x", labelsize=FONT_PT - 2)
    axes.spines[["top", "right"]].set_visible(False)
    axes.spines["bottom"].set_bounds(0, 10)
    for y, o in zip(positions, order, strict=True):
        status = _status(o.rank, o.screen is not None, o.flagged, o.score, short=True)
        text = "not assessed" if o.score is None else score_text(o.score) + (f"  {status}" if status else "")
        colour = MISSING_TEXT_COLOUR if o.score is None else FLAG_TEXT_COLOUR if o.flagged else "black"
        axes.text((o.score or 0.0) + 0.15, y, text, va="center", fontsize=FONT_PT - 2, color=colour)
    axes.set_title(f"Best: {label(rec.best)}", fontsize=TITLE_PT, loc="left")
    axes.set_xlabel("calibrated score (0-10)", fontsize=FONT_PT - 2)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")  # through the Agg canvas attached above
    title = _clipped(f"Scores for {rec.part}: best {label(rec.best)}", MAX_TITLE_CHARS)
    return Chart(png=buffer.getvalue(), alt_text=alt_text(rec), title=title)


def _colour(o: ClassOutcome) -> str:
    if o.rank == "best":
        return BEST_COLOUR
    if o.rank:
        return RUNNER_UP_COLOUR
    return SCREENED_COLOUR if o.screen else OTHER_COLOUR
