"""`matrec`: material-class recommendations in the terminal.

    matrec analyze IMAGE... [--context TEXT] [--strategy claude|vote|weighted]
                   [--mode parallel|nested|single] [--json]
    matrec ask "TEXT" [same options]

Exit codes: 0 success, 2 bad input, 1 any other failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import pydantic
from rich.console import Console
from rich.live import Live

from matrec.board import Board, progress_line, recommendation_panel
from matrec.claude import Claude
from matrec.engine import Engine, Part, RunOptions
from matrec.errors import BadInputError, ConfigError, ImageError, ImageKind, MatrecError
from matrec.images import sniff_format
from matrec.materials import Dimension
from matrec.progress import ProgressEvent
from matrec.report import error_json, recommendation_json
from matrec.results import Recommendation
from matrec.settings import CacheStrategy, EngineSettings, Mode, Strategy

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
_SNIFF_BYTES = 64
_LIVE_REFRESH_PER_S = 8


def _weights(text: str) -> dict[Dimension, float]:
    weights = {d: 1.0 for d in Dimension}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = item.partition("=")
        try:
            weights[Dimension(name.strip())] = float(value)
        except ValueError:
            names = ", ".join(d.value for d in Dimension)
            raise argparse.ArgumentTypeError(f"expected NAME=NUMBER with NAME one of {names}; got {item!r}") from None
    return weights


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="matrec", description="Which material class suits this part?")
    commands = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--strategy", type=Strategy, choices=list(Strategy), help="how analyses are combined")
    common.add_argument("--mode", type=Mode, choices=list(Mode), default=Mode.PARALLEL, help="which calls to make")
    common.add_argument("--cache", type=CacheStrategy, choices=list(CacheStrategy), help="prompt caching")
    common.add_argument("--weights", type=_weights, help="weighted strategy, e.g. cost=3,weight=2")
    common.add_argument("--samples", type=int, help="answers to vote over (vote strategy, single mode)")
    common.add_argument("--conditions", nargs="+", help="operating conditions for nested mode")
    common.add_argument("--json", action="store_true", help="print one JSON object per part")
    analyze = commands.add_parser("analyze", parents=[common], help="analyse part photos (files or folders)")
    analyze.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    analyze.add_argument("--context", default="", help="the part's job, loads, temperature, environment, quantity")
    ask = commands.add_parser("ask", parents=[common], help="a text-only consultation")
    ask.add_argument("text")
    return parser


def _expand(paths: Sequence[Path], err: Console) -> list[Path]:
    """Files as given; folders become the image files inside them, in name order."""
    files: list[Path] = []
    for path in paths:
        if not path.is_dir():
            files.append(path)
            continue
        found = []
        for child in sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")):
            with child.open("rb") as handle:
                if sniff_format(handle.read(_SNIFF_BYTES)) is not None:
                    found.append(child)
                else:
                    err.print(f"skipping {child}: not an image", style="dim")
        if not found:
            raise BadInputError(f"{path} contains no images (JPEG, PNG, GIF, WebP or HEIC).")
        files.extend(found)
    return files


def _read(path: Path, max_bytes: int) -> Part | BadInputError:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            return ImageError(
                ImageKind.TOO_LARGE,
                f"{path.name} is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB.",
            )
        return Part(image=path.read_bytes(), label=path.name)
    except OSError as error:
        return BadInputError(f"cannot read {path}: {error.strerror or error}")


class _Output:
    """Where results and progress go: JSON lines or a live board, depending on flags and the terminal."""

    def __init__(self, as_json: bool, out: TextIO, err: Console) -> None:
        self.as_json = as_json
        self.out = out
        self.console = Console(file=out) if not as_json else err
        self.board = Board()
        self.live_enabled = self.console.is_terminal
        self.live = Live(self.board.render(), console=self.console, refresh_per_second=_LIVE_REFRESH_PER_S)

    def progress(self, event: ProgressEvent) -> None:
        self.board.update(event)
        if self.live_enabled:
            self.live.update(self.board.render(), refresh=True)
        elif not self.as_json and (line := progress_line(event)):
            self.console.print(line, markup=False, highlight=False)

    def result(self, part: str, outcome: Recommendation | MatrecError) -> None:
        if self.as_json:
            shape = recommendation_json(outcome) if isinstance(outcome, Recommendation) else error_json(part, outcome)
            self.out.write(json.dumps(shape) + "\n")
        elif isinstance(outcome, Recommendation):
            if not self.live_enabled:
                self.console.print(recommendation_panel(outcome))
        else:
            self.console.print(f"{part}: {outcome}", style="red", markup=False, highlight=False)


async def _consult(
    engine: Engine, parts: list[Part | BadInputError], labels: list[str], options: RunOptions, output: _Output
) -> int:
    runnable = [p for p in parts if isinstance(p, Part)]
    if output.live_enabled:
        output.live.start()
    try:
        outcomes = iter(await engine.evaluate_many(runnable, options, output.progress))
    finally:
        if output.live_enabled:
            output.live.stop()
    code = EXIT_OK
    for label, part in zip(labels, parts, strict=True):
        outcome: Recommendation | MatrecError = part if isinstance(part, BadInputError) else next(outcomes)
        output.result(label, outcome)
        if isinstance(outcome, BadInputError):
            code = EXIT_BAD_INPUT
        elif isinstance(outcome, MatrecError) and code == EXIT_OK:
            code = EXIT_FAILED
    return code


async def _main(args: argparse.Namespace, settings: EngineSettings, output: _Output) -> int:
    claude = Claude.from_settings(settings)
    try:
        engine = Engine(claude, settings)
        options = RunOptions.from_settings(
            settings,
            strategy=args.strategy,
            mode=args.mode,
            cache=args.cache,
            weights=args.weights,
            samples=args.samples,
            conditions=tuple(args.conditions) if args.conditions else None,
        )
        if args.command == "ask":
            parts: list[Part | BadInputError] = [Part(context=args.text, label="question")]
            labels = ["question"]
        else:
            files = _expand(args.images, output.console)
            parts = [_read(f, settings.max_image_bytes) for f in files]
            parts = [p.model_copy(update={"context": args.context}) if isinstance(p, Part) else p for p in parts]
            labels = [f.name for f in files]
        return await _consult(engine, parts, labels, options, output)
    finally:
        await claude.aclose()


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the CLI; returns the exit code."""
    args = _parser().parse_args(argv)
    err = Console(stderr=True)
    try:
        settings = EngineSettings()
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        return _fail(f"bad setting {'.'.join(map(str, first['loc']))}: {first['msg']}", EXIT_FAILED)
    output = _Output(args.json, out or sys.stdout, err)
    try:
        return asyncio.run(_main(args, settings, output))
    except ConfigError as error:
        return _fail(str(error), EXIT_FAILED)
    except BadInputError as error:
        return _fail(str(error), EXIT_BAD_INPUT)
    except pydantic.ValidationError as error:
        return _fail(f"bad option: {error.errors()[0]['msg']}", EXIT_BAD_INPUT)


def _fail(message: str, code: int) -> int:
    """One unwrapped line on stderr, then the exit code."""
    print(f"matrec: {message}", file=sys.stderr)
    return code
