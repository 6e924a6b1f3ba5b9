"""`matrec eval DATASET`: estimate, ask, run with a progress bar, write the report, print the headline.

Called by `matrec.cli` once the arguments are parsed and the settings loaded, so `matrec --help`
never imports this. The cost estimate always comes first; a run that would spend money starts only
on a yes: typed at the terminal, or `--yes` when there is no terminal to ask on (a CI job).
Output: the estimate, the headline table and where the report went on stdout; the question,
progress and warnings on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import pydantic
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from matrec.choices import Mode, Strategy
from matrec.errors import BadInputError
from matrec.eval.dataset import load_dataset
from matrec.eval.estimate import estimate
from matrec.eval.metrics import failure_rate, percentile, top_k_accuracy
from matrec.eval.results import EvalPlan, EvalResults
from matrec.eval.runner import DEFAULT_CACHE_DIR_NAME, EvalProgress, run_eval
from matrec.settings import EngineSettings

EXIT_OK = 0
EXIT_NOT_RUN = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
RESULTS_JSON = "eval-results.json"  # written only when the report module is not installed
_YES = {"y", "yes"}


def run_command(args: argparse.Namespace, settings: EngineSettings, out: TextIO) -> int:
    """The `eval` subcommand; raises BadInputError for a bad dataset or option (the CLI exits 2)."""
    plan = _plan(args, settings)
    dataset = load_dataset(plan.dataset)
    expected = estimate(plan, settings, dataset)
    _line(out, f"{len(dataset.cases)} cases x {_runs(plan)}: {expected.headline()}")
    if not args.yes:
        if not _is_terminal(sys.stdin) or not _is_terminal(sys.stderr):
            _warn("not run: no terminal to ask on; pass --yes to run it without asking")
            return EXIT_BAD_INPUT
        if not _confirm():
            _warn("not run")
            return EXIT_NOT_RUN
    out_dir: Path = args.out
    cache_dir: Path = args.cache_dir or out_dir / DEFAULT_CACHE_DIR_NAME
    try:
        with _progress_bar() as on_progress:
            results = asyncio.run(
                run_eval(
                    plan,
                    settings,
                    cache_dir=cache_dir,
                    on_progress=on_progress,
                    max_cost_usd=args.max_cost,
                    dataset=dataset,
                )
            )
    except KeyboardInterrupt:
        _warn(f"interrupted; finished consultations are cached in {cache_dir}: run the same command to resume")
        return EXIT_INTERRUPTED
    where = _write(results, out_dir)
    for line in headline_table(results):
        _line(out, line)
    if results.emulated:
        _line(out, f"Answers came from an emulator at {results.base_url}: scripted, saying nothing about quality.")
    if results.stopped:
        _warn(results.stopped)
    _line(out, f"report: {where}")
    return EXIT_OK


def headline_table(results: EvalResults) -> list[str]:
    """Top-1 and top-2 accuracy, failures, latency p50 and cost per arm, as Markdown table lines."""
    efforts = len(results.plan.efforts) > 1
    models = len(results.plan.models) > 1
    lines = [
        "| arm | n | top-1 | top-2 | failed | latency p50 | cost / consultation |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for found in results.arms:
        preds = found.predictions()
        if not preds:
            continue
        arm = found.arm
        label = arm.label + (f" {arm.effort}" if efforts else "") + (f" {arm.model}" if models else "")
        latencies = [p.latency_s for p in preds if p.latency_s is not None]
        costs = [p.cost_usd for p in preds if p.cost_usd is not None]
        latency = f"{percentile(latencies, 50):.2f} s" if latencies else "n/a"
        cost = f"${sum(costs) / len(costs):.4f}" if costs else "n/a"
        lines.append(
            f"| {label} | {len(preds)} | {top_k_accuracy(preds, results.cases, 1):.0%} "
            f"| {top_k_accuracy(preds, results.cases, 2):.0%} | {failure_rate(preds):.0%} | {latency} | {cost} |"
        )
    return lines


def _plan(args: argparse.Namespace, settings: EngineSettings) -> EvalPlan:
    try:
        return EvalPlan(
            dataset=args.dataset,
            modes=tuple(dict.fromkeys(Mode(m) for m in args.mode)),
            strategies=tuple(dict.fromkeys(Strategy(s) for s in args.strategy)),
            efforts=tuple(dict.fromkeys(args.effort or [settings.branch_effort])),
            models=tuple(dict.fromkeys(args.model or [settings.model])),
            repetitions=args.repetitions,
        )
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        option = f"--{first['loc'][0]}" if first["loc"] else "an option"
        raise BadInputError(f"{option}: {first['msg']}") from None


def _runs(plan: EvalPlan) -> str:
    parts = [
        "/".join(m.value for m in plan.modes),
        "/".join(s.value for s in plan.strategies),
        "effort " + "/".join(plan.efforts),
        "/".join(plan.models),
    ]
    if plan.repetitions > 1:
        parts.append(f"{plan.repetitions} repetitions")
    return ", ".join(parts)


def _confirm() -> bool:
    sys.stderr.write("Run? [y/N] ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in _YES


@contextmanager
def _progress_bar() -> Iterator[_ProgressSink]:
    """A rich progress bar on stderr, closed on every exit (Ctrl-C included)."""
    console = Console(file=sys.stderr)
    columns = (
        TextColumn("consultations"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        yield _ProgressSink(progress, progress.add_task("eval", total=None, detail=""))


class _ProgressSink:
    """Moves the bar as consultations finish (an `on_progress` callback)."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self.progress = progress
        self.task = task

    def __call__(self, event: EvalProgress) -> None:
        detail = f"{event.cached} cached, {event.failed} failed, ${event.cost_usd:.2f}"
        if event.skipped:
            detail += f", {event.skipped} skipped (cost limit)"
        self.progress.update(self.task, completed=event.done, total=event.total, detail=detail)


def _write(results: EvalResults, out_dir: Path) -> Path:
    """The report (or, without the report module, the raw results); returns what to open."""
    try:
        from matrec.eval.report import write_report
    except ImportError:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / RESULTS_JSON
        path.write_text(results.to_json(), encoding="utf-8")
        return path
    return write_report(results, out_dir).markdown


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (ValueError, AttributeError):  # closed, or replaced by something that is not a file
        return False


def _line(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()


def _warn(message: str) -> None:
    print(f"matrec eval: {message}", file=sys.stderr, flush=True)
