"""What every benchmark prints: figures over runs (median and spread) and a table of targets.

    figure = Figure((2.10, 2.13, 2.20))
    rows = [Target("parallel: window / ideal <= 1.05", figure.text(3), "1", figure.median <= 1.05)]
    print_targets(rows)            # | target | measured (median, min-max) | ideal | met |
    sys.exit(exit_code(rows))      # 1 when a target is missed

A row whose `met` is None is a figure reported beside the targets, with no target of its own.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_RUNS = 3
MIN_RUNS = 3  # a median of fewer says nothing about the spread


@dataclass(frozen=True)
class Figure:
    """One quantity measured once per run."""

    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> Figure:
        """The figure of these per-run values."""
        return cls(tuple(values))

    @property
    def median(self) -> float:
        """The median over runs."""
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        """The lowest run."""
        return min(self.values)

    @property
    def high(self) -> float:
        """The highest run."""
        return max(self.values)

    def text(self, digits: int = 2, unit: str = "") -> str:
        """'2.13 s (2.10-2.20)': the median, then the lowest and highest run."""
        suffix = f" {unit}" if unit else ""
        return f"{self.median:.{digits}f}{suffix} ({self.low:.{digits}f}-{self.high:.{digits}f})"


@dataclass(frozen=True)
class Target:
    """One row of the targets table; `met` is None for a figure that has no target."""

    name: str
    measured: str
    ideal: str
    met: bool | None


def verdict(met: bool | None) -> str:
    """'yes', 'NO', or 'n/a' for a figure without a target."""
    if met is None:
        return "n/a"
    return "yes" if met else "NO"


def print_targets(rows: Sequence[Target], title: str = "Targets") -> None:
    """The Markdown table of targets."""
    print(f"\n{title}\n\n| target | measured: median (min-max) | ideal | met |\n|---|---|---|---|")
    for row in rows:
        print(f"| {row.name} | {row.measured} | {row.ideal} | {verdict(row.met)} |")


def exit_code(rows: Sequence[Target]) -> int:
    """1 if any target is missed, else 0."""
    return 1 if any(row.met is False for row in rows) else 0


def arguments(description: str, *, extra: Sequence[tuple[str, dict[str, Any]]] = ()) -> argparse.Namespace:
    """`--runs N` (at least 3) and `--json`, plus a benchmark's own options."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help=f"runs per scenario (at least {MIN_RUNS})")
    parser.add_argument("--json", action="store_true", help="also print the raw figures as JSON")
    for flag, options in extra:
        parser.add_argument(flag, **options)
    args = parser.parse_args()
    if args.runs < MIN_RUNS:
        parser.error(f"--runs must be at least {MIN_RUNS}")
    return args


def print_json(figures: object) -> None:
    """The raw figures, for --json."""
    print(json.dumps(figures, indent=1, default=_plain))


def _plain(value: object) -> object:
    if isinstance(value, Figure):
        return list(value.values)
    if hasattr(value, "__dict__"):
        return vars(value)
    return str(value)
