"""Evaluation benchmark: `python -m bench.eval_run [--runs N] [--json]`.

`matrec eval datasets/example.jsonl --mode single parallel --strategy claude --repetitions 1 --yes`
as a user runs it (a fresh `python -m matrec` process, its own output folder, an empty result
cache), against the Claude emulator in its own process answering every call in L = 0.2 s (first
byte at 0.06 s), thinking off. Measured per run: the CLI's wall time from spawn to exit (the target:
under 2 minutes on this 2-core machine), its exit code, and whether report.md, report.json and the
PNG plots were written.

Ideal, from the constants: N cases x (1 single call + 7 parallel calls) x L / 8 (the engine's
default Claude concurrency), the calls spread perfectly over the 8 slots; it leaves out start-up,
the cache primer's wait (one first byte per parallel consultation) and the report's bootstrap.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bench.claude_process import KEY, claude_process
from bench.targets import Figure, Target, arguments, exit_code, print_json, print_targets

ROOT: Final = Path(__file__).resolve().parent.parent
DATASET: Final = ROOT / "datasets" / "example.jsonl"
LATENCY_S: Final = 0.2  # L
FIRST_BYTE_S: Final = 0.06
CONCURRENCY: Final = 8  # EngineSettings.concurrency's default
CALLS_PER_CASE: Final = 1 + 7  # single (one call) + parallel (six branches and the aggregation)
TARGET_S: Final = 120.0
TIMEOUT_S: Final = 600.0


@dataclass(frozen=True)
class Run:
    """One run of the CLI."""

    wall_s: float
    exit_code: int
    report_files: int  # report.md, report.json and the PNG plots found in the output folder
    plots: int


def cases() -> int:
    """How many cases the dataset holds (its non-empty lines)."""
    return sum(1 for line in DATASET.read_text(encoding="utf-8").splitlines() if line.strip())


def ideal_s() -> float:
    """The floor from the constants: every call spread perfectly over the concurrency slots."""
    return cases() * CALLS_PER_CASE * LATENCY_S / CONCURRENCY


async def one_run() -> Run:
    """A fresh emulator process and a fresh output folder; the CLI run once."""
    async with claude_process(latency_s=LATENCY_S, first_token_s=FIRST_BYTE_S, thinking=False) as claude:
        with tempfile.TemporaryDirectory(prefix="matrec-eval-") as workdir:
            out = Path(workdir) / "report"
            keep = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "PYTHONPATH"}}
            env = {**keep, "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": claude.base_url}
            argv = [sys.executable, "-m", "matrec", "eval", str(DATASET), "--mode", "single", "parallel"]
            argv += ["--strategy", "claude", "--repetitions", "1", "--yes", "--out", str(out)]
            started = time.monotonic()
            process = await asyncio.create_subprocess_exec(
                *argv, env=env, cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
            )
            code = await asyncio.wait_for(process.wait(), TIMEOUT_S)
            wall_s = time.monotonic() - started
            written = [p for p in out.glob("*") if p.suffix in {".md", ".json", ".png"}] if out.exists() else []
            plots = sum(1 for p in written if p.suffix == ".png")
            return Run(wall_s, code, len(written), plots)


def targets(runs: list[Run]) -> list[Target]:
    """The evaluation targets, per run (median and spread over runs)."""
    wall = Figure.of([r.wall_s for r in runs])
    ok = all(r.exit_code == 0 for r in runs)
    complete = all(r.report_files >= 3 and r.plots >= 1 for r in runs)  # md + json + >= 1 plot
    floor = ideal_s()
    return [
        Target(f"matrec eval on the example set ({cases()} cases), single + parallel, claude, 1 repetition, "
               "end to end < 2 min", wall.text(1, "s"),
               f"{floor:.1f} s ({cases()} x {CALLS_PER_CASE} calls x L / {CONCURRENCY})", wall.high < TARGET_S),
        Target("... exit code 0", ", ".join(str(r.exit_code) for r in runs), "0", ok),
        Target("... report.md, report.json and the plots written (files, of which plots)",
               "; ".join(f"{r.report_files} ({r.plots})" for r in runs), ">= 3 (>= 1)", complete),
        Target("... wall / ideal", f"{wall.median / floor:.2f}", "1", None),
    ]  # fmt: skip


def main() -> None:
    """Run the benchmark; exits 1 if a target is missed."""
    args = arguments((__doc__ or "").splitlines()[0])
    runs = [asyncio.run(one_run()) for _ in range(args.runs)]
    rows = targets(runs)
    print_targets(rows)
    if args.json:
        print_json({"runs": [r.__dict__ for r in runs]})
    sys.exit(exit_code(rows))


if __name__ == "__main__":
    main()
