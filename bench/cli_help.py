"""CLI start-up benchmark: `python -m bench.cli_help`.

Times `matrec --help` in fresh processes, both the installed console script (the `matrec` next to
this interpreter, e.g. .venv/bin/matrec) and `python -m matrec --help`, and the bare interpreter
(`python -c pass`) as the floor no CLI can beat. Each command runs once to warm the disk cache,
then `--runs` times; the table gives the median and the min-max spread, and whether the median
is under the 0.5 s target. Exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HELP_TARGET_S = 0.5
DEFAULT_RUNS = 10
MIN_RUNS = 5


@dataclass(frozen=True)
class Command:
    """One command line to time, and whether it is held to the target."""

    name: str
    argv: tuple[str, ...]
    has_target: bool


@dataclass(frozen=True)
class Timings:
    """Wall times of one command over fresh processes, in seconds."""

    command: Command
    runs_s: tuple[float, ...]

    @property
    def median_s(self) -> float:
        return statistics.median(self.runs_s)

    @property
    def met(self) -> bool:
        return not self.command.has_target or self.median_s < HELP_TARGET_S


def commands() -> list[Command]:
    """The console script (when installed beside this interpreter), `python -m matrec`, and the floor."""
    python = sys.executable
    script = Path(python).with_name("matrec")
    found = [Command(f"{script} --help", (str(script), "--help"), True)] if script.exists() else []
    return [
        *found,
        Command("python -m matrec --help", (python, "-m", "matrec", "--help"), True),
        Command("python -c pass (floor)", (python, "-c", "pass"), False),
    ]


def time_once(argv: tuple[str, ...]) -> float:
    """Seconds from spawning `argv` to its exit; raises if it fails."""
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)  # noqa: S603  # our own commands
    return time.perf_counter() - started


def measure(command: Command, runs: int) -> Timings:
    """One warm-up run, then `runs` timed runs in fresh processes."""
    time_once(command.argv)
    return Timings(command, tuple(time_once(command.argv) for _ in range(runs)))


def report(results: list[Timings]) -> None:
    """A Markdown table of medians and spreads against the target."""
    print(f"\n`matrec --help` start-up, {len(results[0].runs_s)} fresh processes each\n")
    print("| command | median s | min-max s | target | met |\n|---|---|---|---|---|")
    for t in results:
        target = f"< {HELP_TARGET_S:g} s" if t.command.has_target else "floor"
        spread = f"{min(t.runs_s):.3f}-{max(t.runs_s):.3f}"
        print(f"| `{t.command.name}` | {t.median_s:.3f} | {spread} | {target} | {'yes' if t.met else 'NO'} |")


def main() -> None:
    """Run the benchmark; exits 1 if a target is missed."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help=f"timed runs per command (at least {MIN_RUNS})")
    parser.add_argument("--json", action="store_true", help="also print the raw figures as JSON")
    args = parser.parse_args()
    if args.runs < MIN_RUNS:
        parser.error(f"--runs must be at least {MIN_RUNS}")
    results = [measure(c, args.runs) for c in commands()]
    report(results)
    if args.json:
        print(json.dumps({t.command.name: list(t.runs_s) for t in results}, indent=1))
    sys.exit(0 if all(t.met for t in results) else 1)


if __name__ == "__main__":
    main()
