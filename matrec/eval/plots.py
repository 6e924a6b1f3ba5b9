"""The evaluation report's PNG plots: accuracy with intervals, scores against the reference,
what recalibration did, and latency.

`write_plots` picks what the data supports (no reference scores, no scatter); the drawing
functions below it take plain data and write one PNG each. matplotlib is imported inside the
functions and draws on an explicit Agg canvas, as the bot's score chart does: no pyplot, no
global backend switch, no display, and `matrec eval --help` does not pay for matplotlib.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from matrec.choices import Strategy
from matrec.eval.analysis import STRATEGY_ORDER, ArmSummary, ReportData
from matrec.eval.dataset import Case
from matrec.eval.metrics import MetricValue

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI: Final = 120
PANEL_WIDTH_IN: Final = 4.5
PANEL_HEIGHT_IN: Final = 4.5
BAR_WIDTH_IN_PER_ARM: Final = 1.3
MIN_WIDTH_IN: Final = 6.0
HEIGHT_IN: Final = 4.8
FONT_PT: Final = 12
TITLE_PT: Final = 14
SCORE_MAX: Final = 10.0
POINT_ALPHA: Final = 0.5  # overlapping integer-ish scores show as darker points
TOP1_COLOUR: Final = "#1565c0"
TOP2_COLOUR: Final = "#90caf9"
POINT_COLOUR: Final = "#1565c0"
IDENTITY_COLOUR: Final = "#757575"
ACCURACY_PNG: Final = "accuracy.png"
SCORES_PNG: Final = "scores_vs_reference.png"
RECALIBRATION_PNG: Final = "recalibration.png"
LATENCY_PNG: Final = "latency.png"
LEVEL_LABELS_MAX: Final = 4  # arm names side by side before they slant
EMULATOR_TITLE_NOTE: Final = "\n(emulator: scripted answers, mechanics only)"


@dataclass(frozen=True)
class AccuracyBar:
    """One arm's top-1 and top-2 accuracy with their intervals (fractions 0-1)."""

    label: str
    top1: MetricValue
    top2: MetricValue


@dataclass(frozen=True)
class ScatterPanel:
    """One arm's points (x, y), drawn against the y = x line on 0-10 axes."""

    label: str
    points: list[tuple[float, float]]


def write_plots(cases: Sequence[Case], data: ReportData, out_dir: Path, *, emulated: bool = False) -> list[Path]:
    """Write the plots the data supports into `out_dir`; returns their paths, accuracy first.

    With `emulated`, every title says so: a plot travels without the report's warning.
    """
    if not data.arms:  # a run stopped before its first consultation finished: nothing to draw
        return []
    note = EMULATOR_TITLE_NOTE if emulated else ""
    written = [
        accuracy_plot(
            out_dir / ACCURACY_PNG,
            [AccuracyBar(s.label, s.summary.top1, s.summary.top2) for s in data.arms],
            title="Expected best class found, per mode and strategy" + note,
        )
    ]
    primary = _primary_arms(data)
    references = {case.id: case.scores_0_10() or {} for case in cases}
    scatter = [
        ScatterPanel(
            s.label,
            [
                (reference, o.prediction.scores[c])
                for o in s.outcomes
                for c, reference in references.get(o.prediction.case_id, {}).items()
                if c in o.prediction.scores
            ],
        )
        for s in primary
    ]
    if any(panel.points for panel in scatter):
        written.append(
            scatter_plot(
                out_dir / SCORES_PNG,
                scatter,
                title="Predicted against reference scores" + note,
                x_label="reference score (0-10)",
                y_label="predicted score (0-10)",
            )
        )
    recalibrated = [
        ScatterPanel(
            r.label,
            [
                (o.branch_scores[c], o.calibrated_scores[c])
                for o in data.arm(r.label).outcomes
                for c in o.branch_scores
                if c in o.calibrated_scores
            ],
        )
        for r in data.recalibration
    ]
    if recalibrated:
        written.append(
            scatter_plot(
                out_dir / RECALIBRATION_PNG,
                recalibrated,
                title="Recalibration: specialists' scores against calibrated" + note,
                x_label="branch (specialist) score",
                y_label="calibrated score",
            )
        )
    latencies = [
        (s.label, [o.prediction.latency_s for o in s.outcomes if o.prediction.latency_s is not None]) for s in primary
    ]
    if any(values for _, values in latencies):
        written.append(
            latency_plot(
                out_dir / LATENCY_PNG,
                [(label, v) for label, v in latencies if v],
                title="Latency: each consultation's own critical path" + note,
            )
        )
    return written


def _primary_arms(data: ReportData) -> list[ArmSummary]:
    """One arm per mode (and effort and model): the claude strategy's when it ran, since strategies share calls."""
    strategies = {s.arm.strategy for s in data.arms}
    if not strategies:
        return []
    primary = Strategy.CLAUDE if Strategy.CLAUDE in strategies else min(strategies, key=STRATEGY_ORDER.index)
    return [s for s in data.arms if s.arm.strategy is primary]


def accuracy_plot(path: Path, bars: Sequence[AccuracyBar], *, title: str) -> Path:
    """Top-1 and top-2 accuracy per arm as paired bars with 95% bootstrap error bars."""
    figure = _figure(max(MIN_WIDTH_IN, BAR_WIDTH_IN_PER_ARM * len(bars) + 1.5), HEIGHT_IN)
    axes = figure.add_subplot()
    width = 0.38
    positions = list(range(len(bars)))
    for offset, name, colour, values in (
        (-width / 2, "top-1", TOP1_COLOUR, [b.top1 for b in bars]),
        (width / 2, "top-2", TOP2_COLOUR, [b.top2 for b in bars]),
    ):
        heights = [v.value * 100 for v in values]
        errors = [
            [max(0.0, (v.value - v.ci_low) * 100) for v in values],
            [max(0.0, (v.ci_high - v.value) * 100) for v in values],
        ]
        axes.bar([p + offset for p in positions], heights, width, yerr=errors, capsize=4, color=colour, label=name)
    _arm_ticks(axes, positions, [b.label for b in bars])
    axes.set_ylim(0, 118)  # headroom above 100% for the legend
    axes.set_yticks(range(0, 101, 20))
    axes.set_ylabel("accuracy (%), 95% bootstrap CI", fontsize=FONT_PT)
    axes.set_title(title, fontsize=TITLE_PT)
    axes.legend(fontsize=FONT_PT - 1, loc="upper center", ncols=2, frameon=False)
    _tidy(axes)
    return _save(figure, path)


def scatter_plot(path: Path, panels: Sequence[ScatterPanel], *, title: str, x_label: str, y_label: str) -> Path:
    """One 0-10 scatter per arm side by side, each with the y = x line (points on it agree)."""
    figure = _figure(max(MIN_WIDTH_IN, PANEL_WIDTH_IN * len(panels) + 0.5), PANEL_HEIGHT_IN + 0.6)
    for index, panel in enumerate(panels, start=1):
        axes = figure.add_subplot(1, len(panels), index)
        axes.plot([0, SCORE_MAX], [0, SCORE_MAX], color=IDENTITY_COLOUR, linestyle="--", linewidth=1, label="y = x")
        if panel.points:
            xs, ys = zip(*panel.points, strict=True)
            axes.scatter(xs, ys, s=22, alpha=POINT_ALPHA, color=POINT_COLOUR, edgecolors="none")
        axes.set_xlim(-0.3, SCORE_MAX + 0.3)
        axes.set_ylim(-0.3, SCORE_MAX + 0.3)
        axes.set_title(f"{panel.label} (n = {len(panel.points)})", fontsize=FONT_PT)
        axes.set_xlabel(x_label, fontsize=FONT_PT)
        if index == 1:
            axes.set_ylabel(y_label, fontsize=FONT_PT)
            axes.legend(fontsize=FONT_PT - 2, loc="upper left")
        _tidy(axes)
    figure.suptitle(title, fontsize=TITLE_PT)
    return _save(figure, path)


def latency_plot(path: Path, series: Sequence[tuple[str, list[float]]], *, title: str) -> Path:
    """Each arm's consultation latencies (own critical path) as a box plot with the points over it."""
    figure = _figure(max(MIN_WIDTH_IN, BAR_WIDTH_IN_PER_ARM * len(series) + 1.5), HEIGHT_IN)
    axes = figure.add_subplot()
    positions = list(range(1, len(series) + 1))
    axes.boxplot([values for _, values in series], positions=positions, widths=0.5, showfliers=False)
    for position, (_, values) in zip(positions, series, strict=True):
        # Points spread evenly across the box (not randomly), so the plot is the same on every run.
        step = 0.3 / max(1, len(values) - 1)
        axes.scatter(
            [position - 0.15 + i * step for i in range(len(values))],
            values,
            s=14,
            alpha=POINT_ALPHA,
            color=POINT_COLOUR,
            edgecolors="none",
        )
    _arm_ticks(axes, positions, [label for label, _ in series])
    axes.set_ylim(bottom=0)
    axes.set_ylabel("seconds per consultation", fontsize=FONT_PT)
    axes.set_title(title, fontsize=TITLE_PT)
    _tidy(axes)
    return _save(figure, path)


def _figure(width_in: float, height_in: float) -> Figure:
    # The object API with an explicit Agg canvas: no pyplot, no global backend state.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")  # room for every label
    FigureCanvasAgg(figure)  # attaches itself to the figure
    return figure


def _arm_ticks(axes: Axes, positions: Sequence[float], labels: Sequence[str]) -> None:
    """Arm names under their bars; slanted, ending at the tick, when there are too many to fit level."""
    if len(labels) > LEVEL_LABELS_MAX:
        axes.set_xticks(positions, labels, fontsize=FONT_PT, rotation=25, ha="right", rotation_mode="anchor")
    else:
        axes.set_xticks(positions, labels, fontsize=FONT_PT)


def _tidy(axes: Axes) -> None:
    axes.tick_params(labelsize=FONT_PT - 1)
    axes.spines[["top", "right"]].set_visible(False)


def _save(figure: Figure, path: Path) -> Path:
    # No creation date or software version in the file, so a rerun on the same data writes the same bytes.
    figure.savefig(path, format="png", metadata={"Software": None})
    return path
