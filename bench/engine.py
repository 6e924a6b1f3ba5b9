"""Engine benchmark: `python -m bench.engine [--runs N] [--json]`.

The real engine, through the real SDK, against the Claude emulator in its own process
(`bench.claude_process`). Most scenarios turn thinking off (`--no-thinking`) so every call takes
exactly the emulator's fixed latency L (1.0 s) with its first byte at F (0.3 s), and the ideal is
a formula of L and F:

    sequential, concurrency 1     7L         six branches one after another, then the aggregation
    parallel, cache `none`        2L         the slowest branch (L), then the aggregation (L)
    parallel, cache `prime`       F + 2L     the others start at the primer's first byte
    single-prompt baseline        L          one call
    nested 6x3, concurrency 18    2L         18 branches at once, then the aggregation
    30 parts, concurrency 16      ceil(210 / 16) x L = 14L: the schedule bound, 30 parts x 7
                                  calls of L each through 16 slots (admission raised to 30)
    30 parts, admission 4         max(14L, ceil(30 / 4) x (F + 2L)): also at most 4 consultations
                                  (the default MATREC_MAX_CONSULTATIONS) each taking F + 2L

One scenario thinks as Claude 5.x does (the defaults: claude-sonnet-5-5, effort medium, cache
`prime`; the emulator at 400 output tokens/s, seed 7); its ideal comes from the emulator's own plan
for each request (`bench.calls.planned_ideal_s`): max(primer, primer's first byte + slowest other
branch) + aggregation, each its planned service time.

What each figure measures:
- window: from the first Claude request's arrival at the emulator to the engine's return (both
  time.monotonic(), one clock across processes): the Claude part of the consultation.
- wall: from the call to `evaluate` to its return, so image preparation (one 2016x1512 JPEG per
  part) is included. The targets hold the window to the ideal; wall is shown beside it.
- branch phase: from the first branch's arrival to the last branch's finish, per the emulator.
Tokens and estimated cost are the engine's own report (`rec.usage`), per consultation.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from bench.calls import Call, branch_calls, planned_ideal_s
from bench.claude_process import FIRST_TOKEN_S, ClaudeService, claude_process
from bench.engine_settings import engine_settings
from bench.photos import photo
from bench.targets import Figure, Target, arguments, exit_code, print_json, print_targets
from matrec.choices import CacheStrategy, Mode
from matrec.claude import Claude
from matrec.engine import Engine, Part, RunOptions
from matrec.errors import MatrecError
from matrec.results import Recommendation, TokenUsage

LATENCY_S: Final = 1.0  # L
CLASSES: Final = 6
CALLS_PER_PART: Final = CLASSES + 1  # six branches and the aggregation
PARTS_MANY: Final = 30
CONCURRENCY_MANY: Final = 16
ADMISSION_MANY: Final = PARTS_MANY  # max_consultations high enough not to bind
DEFAULT_ADMISSION: Final = 4  # EngineSettings.max_consultations
CONCURRENCY_NESTED: Final = 18
REALISTIC_OUTPUT_TOKENS_PER_S: Final = 400.0
REALISTIC_SEED: Final = 7
PARALLEL_MAX_RATIO: Final = 1.05
NESTED_MAX_RATIO: Final = 1.1
MANY_MAX_RATIO: Final = 1.15
MIN_SPEEDUP: Final = 5.5
CONTEXT: Final = "Wall bracket holding a 20 kg pump, indoors near a boiler, about 500 per year."


@dataclass(frozen=True)
class Scenario:
    """A consultation (or 30) under some settings, and its ideal: a formula, or None for the plan's."""

    key: str
    name: str
    ideal_text: str
    ideal_s: float | None
    settings: dict[str, Any] = field(default_factory=dict)
    mode: Mode = Mode.PARALLEL
    parts: int = 1


@dataclass(frozen=True)
class RunFigures:
    """One run of a scenario."""

    wall_s: float
    window_s: float
    ideal_s: float
    branch_phase_s: float
    peak_concurrency: int
    calls: int
    recommendations: int
    usage: TokenUsage  # of the first part
    cost_usd: float | None


@dataclass
class Measured:
    """Every run of one scenario."""

    scenario: Scenario
    runs: list[RunFigures] = field(default_factory=list)

    def figure(self, name: str) -> Figure:
        """One field of every run."""
        return Figure.of([float(getattr(r, name)) for r in self.runs])

    @property
    def ratio(self) -> Figure:
        """The window over the ideal, per run."""
        return Figure.of([r.window_s / r.ideal_s for r in self.runs])


def scenarios(latency_s: float, first_s: float) -> list[Scenario]:
    """The constant-latency scenarios, with their ideals (see the module docstring)."""
    none, prime = {"cache": CacheStrategy.NONE}, {"cache": CacheStrategy.PRIME}
    many_calls = PARTS_MANY * CALLS_PER_PART
    schedule_s = math.ceil(many_calls / CONCURRENCY_MANY) * latency_s
    admitted_s = max(schedule_s, math.ceil(PARTS_MANY / DEFAULT_ADMISSION) * (first_s + 2 * latency_s))
    many = {"concurrency": CONCURRENCY_MANY, "max_consultations": ADMISSION_MANY}
    return [
        Scenario("sequential", "sequential (concurrency 1)", "7L", 7 * latency_s, {**none, "concurrency": 1}),
        Scenario("parallel", "parallel, cache `none`", "2L", 2 * latency_s, none),
        Scenario("prime", "parallel, cache `prime`", "F + 2L", first_s + 2 * latency_s, prime),
        Scenario("single", "single-prompt baseline", "L", latency_s, none, Mode.SINGLE),
        Scenario(
            "nested",
            "nested 6x3, concurrency 18",
            "2L",
            2 * latency_s,
            {**none, "concurrency": CONCURRENCY_NESTED},
            Mode.NESTED,
        ),
        Scenario(
            "many-none",
            "30 parts, concurrency 16, `none`",
            "ceil(210/16) x L",
            schedule_s,
            {**many, **none},
            parts=PARTS_MANY,
        ),
        Scenario(
            "many-prime",
            "30 parts, concurrency 16, `prime`",
            "ceil(210/16) x L",
            schedule_s,
            {**many, **prime},
            parts=PARTS_MANY,
        ),
        Scenario(
            "many-admission",
            "30 parts, concurrency 16, `prime`, admission 4 (default)",
            "max(ceil(210/16) x L, ceil(30/4) x (F + 2L))",
            admitted_s,
            {"concurrency": CONCURRENCY_MANY, **prime},
            parts=PARTS_MANY,
        ),
    ]


REALISTIC = Scenario(
    "thinking",
    "parallel, thinking on (defaults: sonnet-5-5, medium, `prime`)",
    "plan: max(primer, primer first byte + slowest other) + aggregation",
    None,
)


async def consult(engine: Engine, parts: Sequence[Part], options: RunOptions) -> list[Recommendation | MatrecError]:
    """One part through `evaluate` (as the bot and CLI do), several through `evaluate_many`."""
    if len(parts) == 1:
        return [await engine.evaluate(parts[0], options)]
    return await engine.evaluate_many(parts, options)


async def measure(claude: ClaudeService, scenario: Scenario, parts: Sequence[Part]) -> RunFigures:
    """One run of `scenario` from a reset emulator (empty cache)."""
    settings = engine_settings(claude.base_url, **scenario.settings)
    await claude.reset()
    client = Claude.from_settings(settings)
    engine = Engine(client, settings)
    options = RunOptions.from_settings(settings, mode=scenario.mode)
    started = time.monotonic()
    results = await consult(engine, parts[: scenario.parts], options)
    returned = time.monotonic()
    await client.aclose()
    requests = await claude.requests()
    recs = [r for r in results if isinstance(r, Recommendation)]
    primed = settings.cache is CacheStrategy.PRIME
    return RunFigures(
        wall_s=returned - started,
        window_s=returned - min(c.arrived_at for c in requests.calls),
        ideal_s=scenario.ideal_s if scenario.ideal_s is not None else planned_ideal_s(requests.calls, primed=primed),
        branch_phase_s=branch_phase_s(requests.calls),
        peak_concurrency=requests.peak_concurrency,
        calls=len(requests.calls),
        recommendations=len(recs),
        usage=recs[0].usage.total if recs else TokenUsage(),
        cost_usd=recs[0].usage.cost_usd if recs else None,
    )


def branch_phase_s(calls: list[Call]) -> float:
    """From the first branch's arrival to the last branch's finish, per the emulator."""
    branches = branch_calls(calls)
    if not branches:
        return 0.0
    return max(c.finished_at or c.arrived_at for c in branches) - branches[0].arrived_at


async def run_all(runs: int) -> dict[str, Measured]:
    """Every scenario, `runs` times each, on two emulator processes (thinking off, then on)."""
    parts = [Part(image=photo(seed), context=CONTEXT, label=f"part{seed}") for seed in range(PARTS_MANY)]
    results: dict[str, Measured] = {}
    async with claude_process(latency_s=LATENCY_S, first_token_s=FIRST_TOKEN_S, thinking=False) as claude:
        for scenario in scenarios(LATENCY_S, FIRST_TOKEN_S):
            results[scenario.key] = Measured(scenario, [await measure(claude, scenario, parts) for _ in range(runs)])
    async with claude_process(
        latency_s=LATENCY_S,
        first_token_s=FIRST_TOKEN_S,
        output_tokens_per_s=REALISTIC_OUTPUT_TOKENS_PER_S,
        seed=REALISTIC_SEED,
        thinking=True,
    ) as claude:
        results[REALISTIC.key] = Measured(REALISTIC, [await measure(claude, REALISTIC, parts) for _ in range(runs)])
    return results


def print_scenarios(results: dict[str, Measured]) -> None:
    """Per scenario: window and wall against the ideal, concurrency, calls."""
    print(f"\nEngine benchmark: L = {LATENCY_S:g} s per call, F = {FIRST_TOKEN_S:g} s to the first byte\n")
    print(
        "| scenario | ideal | ideal s | window s | window / ideal | wall s (incl. image prep) | peak concurrency "
        "| calls |\n|---|---|---|---|---|---|---|---|"
    )
    for m in results.values():
        s = m.scenario
        print(
            f"| {s.name} | {s.ideal_text} | {m.figure('ideal_s').text(2)} | {m.figure('window_s').text(2)} "
            f"| {m.ratio.text(3)} | {m.figure('wall_s').text(2)} | {max(r.peak_concurrency for r in m.runs)} "
            f"| {m.runs[0].calls} |"
        )


def print_costs(results: dict[str, Measured]) -> None:
    """Tokens and the engine's estimated cost per consultation (its own `rec.usage`, first run)."""
    print("\nPer consultation, as the engine reports it (`rec.usage`; tokens of the first run, cost over runs):\n")
    print("| scenario | tokens in / out / cache write / cache read | est. cost $ |\n|---|---|---|")
    for key in ("parallel", "prime", "single", "thinking"):
        m = results[key]
        u = m.runs[0].usage
        costs = Figure.of([r.cost_usd or 0.0 for r in m.runs])
        tokens = f"{u.input_tokens:,} / {u.output_tokens:,} / {u.cache_write_tokens:,} / {u.cache_read_tokens:,}"
        print(f"| {m.scenario.name} | {tokens} | {costs.text(4)} |")


def targets(results: dict[str, Measured]) -> list[Target]:
    """The engine's targets, each against its ideal."""
    parallel, prime, nested, thinking = (results[k] for k in ("parallel", "prime", "nested", "thinking"))
    sequential_phase = results["sequential"].figure("branch_phase_s")
    speedup = Figure.of(
        [s / p for s, p in zip(sequential_phase.values, parallel.figure("branch_phase_s").values, strict=True)]
    )
    rows = [
        _ratio_row("parallel, `none`: window / (slowest branch + aggregation)", parallel, PARALLEL_MAX_RATIO),
        _ratio_row("parallel, `prime`: window / (primer first byte + branch + aggregation)", prime, PARALLEL_MAX_RATIO),
        Target(
            "six branches faster than sequential (branch phase, per the emulator), >= 5.5x",
            speedup.text(2, "x"),
            "6x (6L / L)",
            speedup.median >= MIN_SPEEDUP,
        ),
        _ratio_row("nested 6x3 at concurrency 18: window / (one branch + aggregation)", nested, NESTED_MAX_RATIO),
        _ratio_row("thinking on: window / the emulator's planned critical path", thinking, PARALLEL_MAX_RATIO),
    ]
    for key in ("many-none", "many-prime"):
        many = results[key]
        peak = max(r.peak_concurrency for r in many.runs)
        rows.append(Target(f"{many.scenario.name}: peak concurrency <= 16", str(peak), "16", peak <= CONCURRENCY_MANY))
        rows.append(_ratio_row(f"{many.scenario.name}: window / schedule bound", many, MANY_MAX_RATIO))
    admission = results["many-admission"]
    rows.append(Target(f"{admission.scenario.name}: window / its bound", admission.ratio.text(3), "1", None))
    return rows


def _ratio_row(name: str, measured: Measured, limit: float) -> Target:
    ratio = measured.ratio
    return Target(
        f"{name} <= {limit:g}", ratio.text(3), f"1 ({measured.figure('ideal_s').median:.2f} s)", ratio.median <= limit
    )


def main() -> None:
    """Run the benchmark; exits 1 if a target is missed."""
    args = arguments((__doc__ or "").splitlines()[0])
    results = asyncio.run(run_all(args.runs))
    print_scenarios(results)
    print_costs(results)
    rows = targets(results)
    print_targets(rows)
    if args.json:
        print_json({k: m.runs for k, m in results.items()})
    sys.exit(exit_code(rows))


if __name__ == "__main__":
    main()
