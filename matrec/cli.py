"""`matrec`: material-class recommendations in the terminal.

    matrec analyze IMAGE... [--context TEXT] [--strategy claude|vote|weighted]
                   [--mode parallel|nested|single] [--json]
    matrec ask "TEXT" [same options]
    matrec eval DATASET [--mode M...] [--strategy S...] [--effort E...] [--model ID...]
                [--repetitions N] [--out DIR] [--yes] [--max-cost USD] [--cache-dir DIR]

Output: on a terminal, a live table of the branches (score, verdict, summary, example grades,
strengths and concerns of each class), then the recommendation. Piped, one plain line per finished
branch, then the recommendation; no line is ever wrapped. With `--json`, one JSON object per part
on stdout, and the live table on stderr when that is a terminal. A part that gets no
recommendation, a bad setting and an interruption are each reported once, as one line on stderr
(with `--json`, a part's failure is its JSON object instead).

Exit codes:
    0    every part got a recommendation
    2    bad input; the message names what to fix: an argument, a file or image, or a setting
         (an environment variable or `.env` entry, a missing ANTHROPIC_API_KEY included)
    1    any other failure: too few branches answered, the consultation overran its deadline;
         or stdout was closed early (`matrec ... | head -1`): the consultation stops, silently
    130  interrupted (Ctrl-C): the live table and the HTTP client are closed first

`matrec eval` prints its cost estimate first and runs only on a yes (asked on the terminal, or
`--yes`): without a terminal and without `--yes` it exits 2, a declined question exits 1. A bad
dataset exits 2 naming file:line. Consultations that get no recommendation are counted as wrong
in the report, not as a failed command; a run stopped by `--max-cost` still writes its report
(exit 0, and says so); Ctrl-C exits 130 keeping every finished consultation in the cache.

Only the standard library and `matrec.errors` load before the arguments are parsed, so
`matrec --help` is quick; rich, pydantic, anthropic and Pillow load when a consultation starts.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from matrec.choices import CacheStrategy, Mode, Strategy
from matrec.errors import BadInputError, ConfigError, ImageError, ImageKind, MatrecError

if TYPE_CHECKING:
    import asyncio

    from matrec.engine import Engine, Part, PartLoader, RunOptions
    from matrec.materials import Dimension
    from matrec.progress import ProgressEvent
    from matrec.results import Recommendation
    from matrec.settings import EngineSettings
    from matrec.terminal import TerminalView

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
_SNIFF_BYTES = 64
# matrec.choices imports no pydantic, so offering these keeps `--help` quick.
STRATEGY_CHOICES = tuple(s.value for s in Strategy)
MODE_CHOICES = tuple(m.value for m in Mode)
CACHE_CHOICES = tuple(c.value for c in CacheStrategy)
EFFORT_CHOICES = ("low", "medium", "high", "xhigh", "max")  # matrec.models.EFFORT_LEVELS, which loads pydantic


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the CLI; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        return _run(args, out or sys.stdout)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="matrec", description="Which material class suits this part?")
    commands = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--strategy", choices=STRATEGY_CHOICES, help="how analyses are combined")
    common.add_argument("--mode", choices=MODE_CHOICES, help="which calls to make (default: parallel)")
    common.add_argument("--cache", choices=CACHE_CHOICES, help="prompt caching")
    common.add_argument("--weights", type=_weights, help="weighted strategy, e.g. cost=3,weight=2")
    common.add_argument("--samples", type=int, help="answers to vote over (vote strategy, single mode)")
    common.add_argument("--conditions", nargs="+", help="operating conditions for nested mode")
    common.add_argument("--json", action="store_true", help="print one JSON object per part")
    analyze = commands.add_parser("analyze", parents=[common], help="analyse part photos (files or folders)")
    analyze.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    analyze.add_argument("--context", default="", help="the part's job, loads, temperature, environment, quantity")
    ask = commands.add_parser("ask", parents=[common], help="a text-only consultation")
    ask.add_argument("text")
    _eval_parser(commands)
    return parser


def _eval_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    evaluate = commands.add_parser(
        "eval", help="run a labelled dataset (JSONL) through modes and strategies; write a report"
    )
    evaluate.add_argument("dataset", type=Path, metavar="DATASET")
    evaluate.add_argument("--mode", nargs="+", choices=MODE_CHOICES, default=["single", "parallel"])
    evaluate.add_argument("--strategy", nargs="+", choices=STRATEGY_CHOICES, default=list(STRATEGY_CHOICES))
    evaluate.add_argument("--effort", nargs="+", choices=EFFORT_CHOICES, help="default: MATREC_BRANCH_EFFORT")
    evaluate.add_argument("--model", nargs="+", help="default: MATREC_MODEL")
    evaluate.add_argument("--repetitions", type=int, default=1, help="consultations per case and arm")
    evaluate.add_argument("--out", type=Path, default=Path("."), help="report folder (default: here)")
    evaluate.add_argument("--yes", action="store_true", help="run without asking (needed without a terminal)")
    evaluate.add_argument("--max-cost", type=float, metavar="USD", help="start no consultation once this is spent")
    evaluate.add_argument("--cache-dir", type=Path, help="per-consultation results (default: OUT/.matrec-eval-cache)")


def _weights(text: str) -> dict[Dimension, float]:
    """`--weights` takes what MATREC_WEIGHTS takes, with the same messages."""
    from matrec.settings import parse_weights

    try:
        return parse_weights(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _run(args: argparse.Namespace, out: TextIO) -> int:
    import asyncio

    settings = _load_settings()
    if isinstance(settings, str):
        return _fail(f"bad setting {settings}", EXIT_BAD_INPUT)
    if args.command == "eval":
        from matrec.eval.command import run_command

        try:
            return run_command(args, settings, out)
        except (BadInputError, ConfigError) as error:
            return _fail(str(error), EXIT_BAD_INPUT)
    output = _Output(args.json, out)
    try:
        code = asyncio.run(_main(args, settings, output))
    except (BadInputError, ConfigError) as error:
        return _fail(str(error), EXIT_BAD_INPUT)
    except asyncio.CancelledError:
        if not output.reader_gone:
            raise
        return EXIT_FAILED
    return EXIT_FAILED if output.reader_gone else code


def _load_settings() -> EngineSettings | str:
    """The settings, or one line naming the environment variable that is wrong."""
    import pydantic
    import pydantic_settings

    from matrec.settings import EngineSettings, settings_error

    try:
        return EngineSettings()
    except (pydantic.ValidationError, pydantic_settings.SettingsError) as error:
        return settings_error(EngineSettings, error)


async def _main(args: argparse.Namespace, settings: EngineSettings, output: _Output) -> int:
    from matrec.claude import Claude
    from matrec.engine import Engine

    claude = Claude.from_settings(settings)
    try:
        engine = Engine(claude, settings)
        options = _options(args, settings)
        labels, parts = _parts(args, settings)
        return await _consult(engine, parts, labels, options, output)
    finally:
        await claude.aclose()


def _options(args: argparse.Namespace, settings: EngineSettings) -> RunOptions:
    import pydantic

    from matrec.engine import RunOptions

    try:
        return RunOptions.from_settings(
            settings,
            strategy=args.strategy,
            mode=args.mode,
            cache=args.cache,
            weights=args.weights,
            samples=args.samples,
            conditions=tuple(args.conditions) if args.conditions else None,
        )
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        option = f"--{first['loc'][0]}" if first["loc"] else "an option"
        raise BadInputError(f"{option}: {first['msg']}") from None


def _parts(args: argparse.Namespace, settings: EngineSettings) -> tuple[list[str], list[Part | PartLoader]]:
    """Labels and parts in input order; a file is read only when its consultation's turn comes."""
    from matrec.engine import Part

    if args.command == "ask":
        return ["question"], [Part(context=args.text, label="question")]
    files = _expand(args.images)
    loaders: list[Part | PartLoader] = [
        functools.partial(_read, f, settings.max_image_bytes, args.context) for f in files
    ]
    return [f.name for f in files], loaders


def _expand(paths: Sequence[Path]) -> list[Path]:
    """Files as given; folders become the image files inside them, in name order."""
    from matrec.images import ACCEPTED_FORMATS_TEXT, sniff_format

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
                    _warn(f"skipping {child}: not an image")
        if not found:
            raise BadInputError(f"{path} contains no images ({ACCEPTED_FORMATS_TEXT}).")
        files.extend(found)
    return files


def _read(path: Path, max_bytes: int, context: str) -> Part:
    """The part a file holds (called when its turn comes); raises BadInputError."""
    from matrec.engine import Part

    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ImageError(
                ImageKind.TOO_LARGE,
                f"{path.name} is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB.",
            )
        return Part(image=path.read_bytes(), label=path.name, context=context)
    except OSError as error:
        raise BadInputError(f"cannot read {path}: {error.strerror or error}") from None


async def _consult(
    engine: Engine, parts: list[Part | PartLoader], labels: list[str], options: RunOptions, output: _Output
) -> int:
    with output.running():
        outcomes = await engine.evaluate_many(parts, options, output.progress)
    code = EXIT_OK
    for label, outcome in zip(labels, outcomes, strict=True):
        output.result(label, outcome)
        if isinstance(outcome, BadInputError):
            code = EXIT_BAD_INPUT
        elif isinstance(outcome, MatrecError) and code == EXIT_OK:
            code = EXIT_FAILED
    return code


class _Output:
    """Where progress and results go: a live view, plain lines or JSON, by the flags and the terminal."""

    def __init__(self, as_json: bool, out: TextIO) -> None:
        self.as_json = as_json
        self.out = out
        screen = sys.stderr if as_json else out
        self.view: TerminalView | None = None
        self.reader_gone = False
        self._consultation: asyncio.Task[object] | None = None
        if _is_terminal(screen):
            from matrec.terminal import TerminalView

            self.view = TerminalView(screen)

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Around a consultation: draw the live view (closed on every exit, Ctrl-C included), and let a
        stdout closed by its reader stop the consultation."""
        import asyncio

        self._consultation = asyncio.current_task()
        try:
            with self.view or contextlib.nullcontext():
                yield
        finally:
            self._consultation = None

    def progress(self, event: ProgressEvent) -> None:
        """A ProgressSink: redraw the live view, or log a branch that finished when piped."""
        from matrec.report import progress_line

        if self.view is not None:
            self.view.update(event)
        elif not self.as_json and (line := progress_line(event)):
            self._line(line)

    def result(self, part: str, outcome: Recommendation | MatrecError) -> None:
        """Report one part's outcome once: as JSON, as plain text, or (a failure) as a line on stderr."""
        import json

        from matrec.report import error_json, recommendation_json, recommendation_text

        if self.as_json:
            shape = error_json(part, outcome) if isinstance(outcome, MatrecError) else recommendation_json(outcome)
            self._line(json.dumps(shape))
        elif isinstance(outcome, MatrecError):
            _warn(f"{part}: {outcome}")
        elif self.view is None:  # a live view already shows the recommendation
            self._line(recommendation_text(outcome))

    def _line(self, text: str) -> None:
        if self.reader_gone:
            return
        try:
            self.out.write(text + "\n")
            self.out.flush()  # a reader at the other end of a pipe sees each branch as it finishes
        except BrokenPipeError:  # `| head -1`: nobody reads the rest, so stop spending on it
            self.reader_gone = True
            if self._consultation is not None:
                self._consultation.cancel()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except ValueError:  # closed
        return False


def _warn(message: str) -> None:
    print(f"matrec: {message}", file=sys.stderr, flush=True)


def _fail(message: str, code: int) -> int:
    """One unwrapped line on stderr, then the exit code."""
    _warn(message)
    return code
