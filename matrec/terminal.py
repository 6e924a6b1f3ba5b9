"""The terminal view: a rich table of branches filling in live, then the recommendation.

Each finished class shows its score, verdict and one-sentence summary, then its example grades,
strengths (+) and concerns (-), so the table says what the README promises while it fills in.
"""

from __future__ import annotations

from types import TracebackType
from typing import TextIO

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from matrec.progress import BranchState, BranchStatus, ProgressEvent, RunSnapshot, StageStatus
from matrec.report import branch_name, footer, grades, headline, listing, one_line, scores_line
from matrec.results import Recommendation
from matrec.schema import BranchAnalysis

LIVE_REFRESH_PER_S = 8

_STATUS_STYLE = {
    BranchStatus.QUEUED: ("queued", "dim"),
    BranchStatus.RUNNING: ("running", "yellow"),
    BranchStatus.DONE: ("done", "green"),
    BranchStatus.FAILED: ("failed", "red"),
}
_AGGREGATION = {
    StageStatus.PENDING: "aggregation: waiting for the branches",
    StageStatus.RUNNING: "aggregation: comparing the classes...",
    StageStatus.DONE: "aggregation: done",
    StageStatus.FAILED: "aggregation: failed",
}


def analysis_text(analysis: BranchAnalysis) -> Text:
    """A class's summary, then its grades, strengths and concerns, one short line each."""
    text = Text(one_line(analysis.summary))
    text.append("\ngrades: ", style="dim")
    text.append(grades(analysis), style="cyan")
    text.append("\n+ ", style="green")
    text.append(listing(analysis.strengths))
    text.append("\n- ", style="red")
    text.append(listing(analysis.concerns))
    return text


def _row(state: BranchState, details: bool) -> list[RenderableType]:
    word, style = _STATUS_STYLE[state.status]
    result = state.result
    if result is None or result.analysis is None:
        detail = Text(one_line(result.error or ""), style="red") if result else Text("")
        return [branch_name(state), Text(word, style=style), "", "", detail]
    a = result.analysis
    verdict = Text("yes", style="green") if a.recommended else Text("no", style="red")
    analysis = analysis_text(a) if details else Text(one_line(a.summary))
    return [branch_name(state), Text(word, style=style), f"{a.suitability}/10", verdict, analysis]


def snapshot_table(snapshot: RunSnapshot, details: bool = True) -> Table:
    """The branches of one run as a table; `details` adds each class's grades, strengths and concerns."""
    table = Table(title=f"{snapshot.part}: {snapshot.mode.value}, {snapshot.strategy.value}", expand=True)
    for column in ("class", "status", "score", "rec.", "analysis"):
        table.add_column(column, no_wrap=column != "analysis", ratio=3 if column == "analysis" else None)
    for state in snapshot.branches:
        table.add_row(*_row(state, details))
    table.caption = _AGGREGATION[snapshot.aggregation] if snapshot.error is None else f"failed: {snapshot.error}"
    return table


def recommendation_panel(rec: Recommendation) -> Panel:
    """The recommendation as a panel."""
    body = Text()
    best, rest = headline(rec)
    body.append(best, style="bold green")
    body.append(rest + "\n\n")
    body.append(rec.rationale + "\n\n")
    body.append(scores_line(rec) + "\n")
    for screen in rec.screened_out:
        body.append(f"Screened out: {screen.material.value}: {screen.reason}\n", style="dim")
    if rec.missing:
        body.append("Could not be assessed: " + ", ".join(m.value for m in rec.missing) + "\n", style="red")
    for question in rec.questions:
        body.append(f"? {question}\n", style="cyan")
    for note in rec.notes:
        body.append(note + "\n", style="yellow")
    body.append(footer(rec), style="dim")
    return Panel(body, title=rec.part)


def render(snapshots: list[RunSnapshot], details: bool = True) -> RenderableType:
    """Every run: its table, and its recommendation once there is one."""
    parts: list[RenderableType] = []
    for snapshot in snapshots:
        parts.append(snapshot_table(snapshot, details))
        if snapshot.recommendation is not None:
            parts.append(recommendation_panel(snapshot.recommendation))
    return Group(*parts)


class Frame:
    """What the live view draws: with every class's details while they fit the screen's height, else
    without them, so the aggregation line at the bottom stays in view; `final` frames always have them
    (they stay in the scrollback)."""

    def __init__(self, snapshots: list[RunSnapshot], final: bool = False) -> None:
        self.snapshots = snapshots
        self.final = final

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        detailed = render(self.snapshots)
        if self.final or len(console.render_lines(detailed, options, pad=False)) <= console.size.height:
            yield detailed
        else:
            yield render(self.snapshots, details=False)


class TerminalView:
    """The newest snapshot of every run, drawn live on a terminal; a context manager around rich's Live."""

    def __init__(self, file: TextIO) -> None:
        self._runs: dict[str, RunSnapshot] = {}
        console = Console(file=file, force_terminal=True)
        self._live = Live(Frame([]), console=console, refresh_per_second=LIVE_REFRESH_PER_S)

    def update(self, event: ProgressEvent) -> None:
        """Take a progress event (a ProgressSink) and redraw."""
        self._runs[event.snapshot.run_id] = event.snapshot
        self._live.update(Frame(list(self._runs.values())), refresh=True)

    def __enter__(self) -> TerminalView:
        self._live.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        """Stop drawing: the last frame, with every detail, stays on screen and the cursor comes back."""
        self._live.update(Frame(list(self._runs.values()), final=True))
        self._live.stop()
