"""The terminal board: a rich table of branches filling in live, then the recommendation."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from matrec.progress import BranchState, BranchStatus, ProgressEvent, RunSnapshot, StageStatus
from matrec.report import footer, label
from matrec.results import Recommendation

_STATUS_STYLE = {
    BranchStatus.QUEUED: ("queued", "dim"),
    BranchStatus.RUNNING: ("running", "yellow"),
    BranchStatus.DONE: ("done", "green"),
    BranchStatus.FAILED: ("failed", "red"),
}


def _row(state: BranchState) -> list[RenderableType]:
    word, style = _STATUS_STYLE[state.status]
    name = label(state.material) + (f" / {state.condition.split(':')[0]}" if state.condition else "")
    result = state.result
    if result is None or result.analysis is None:
        detail = Text(result.error or "", style="red") if result else Text("")
        return [name, Text(word, style=style), "", "", detail]
    a = result.analysis
    verdict = Text("yes", style="green") if a.recommended else Text("no", style="red")
    return [name, Text(word, style=style), f"{a.suitability}/10", verdict, a.summary]


def snapshot_table(snapshot: RunSnapshot) -> Table:
    """The branches of one run as a table."""
    table = Table(title=f"{snapshot.part}: {snapshot.mode.value}, {snapshot.strategy.value}", expand=True)
    for column in ("class", "status", "score", "rec.", "summary"):
        table.add_column(column, no_wrap=column != "summary", ratio=3 if column == "summary" else None)
    for state in snapshot.branches:
        table.add_row(*_row(state))
    aggregation = {
        StageStatus.PENDING: "aggregation: waiting for the branches",
        StageStatus.RUNNING: "aggregation: comparing the classes...",
        StageStatus.DONE: "aggregation: done",
        StageStatus.FAILED: "aggregation: failed",
    }[snapshot.aggregation]
    table.caption = aggregation if snapshot.error is None else f"failed: {snapshot.error}"
    return table


def recommendation_panel(rec: Recommendation) -> Panel:
    """The recommendation as a panel."""
    runner = f"   runner-up: {label(rec.runner_up)}" if rec.runner_up else ""
    body = Text()
    body.append(f"Best: {label(rec.best)}", style="bold green")
    body.append(f"{runner}   confidence: {rec.confidence}\n\n")
    body.append(rec.rationale + "\n\n")
    scores = "  ".join(f"{m.value} {s:g}" if s is not None else f"{m.value} n/a" for m, s in rec.scores.items())
    body.append(f"Calibrated scores: {scores}\n")
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


class Board:
    """Keeps the newest snapshot of every run and renders them together."""

    def __init__(self) -> None:
        self._runs: dict[str, RunSnapshot] = {}

    def update(self, event: ProgressEvent) -> None:
        """Take a progress event (a ProgressSink)."""
        self._runs[event.snapshot.run_id] = event.snapshot

    def render(self) -> RenderableType:
        """Every run: its table, and its recommendation once there is one."""
        parts: list[RenderableType] = []
        for snapshot in self._runs.values():
            parts.append(snapshot_table(snapshot))
            if snapshot.recommendation is not None:
                parts.append(recommendation_panel(snapshot.recommendation))
        return Group(*parts)


def progress_line(event: ProgressEvent) -> str | None:
    """A one-line log of a branch or run finishing, for output that is not a terminal."""
    snapshot = event.snapshot
    if event.branch is not None:
        state = snapshot.branches[event.branch]
        if state.status not in (BranchStatus.DONE, BranchStatus.FAILED) or state.result is None:
            return None
        name = label(state.material) + (f" / {state.condition.split(':')[0]}" if state.condition else "")
        if state.result.analysis is None:
            return f"[{snapshot.part}] {name}: failed: {state.result.error}"
        a = state.result.analysis
        verdict = "recommended" if a.recommended else "not recommended"
        return f"[{snapshot.part}] {name}: {a.suitability}/10, {verdict}. {a.summary}"
    if snapshot.error is not None and snapshot.finished:
        return f"[{snapshot.part}] failed: {snapshot.error}"
    return None
