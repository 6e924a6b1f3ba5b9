"""Claude 5.x rules benchmark: `python -m bench.claude5 [--runs N] [--json]`.

Default EngineSettings (only the API key and the emulator's URL set: claude-sonnet-5-5, effort
medium, max_tokens 16,000 per branch and aggregation, cache `prime`) against the Claude emulator
with thinking on, as Claude 5.x thinks by default (adaptive thinking, the emulator's assumed
heavy-tailed distribution in emulators/claude_thinking.py). Each run makes 20 consultations, five
on each of four emulators with different seeds (so four independent draws of thinking), one after
another; every run uses new seeds.

What is counted, per run:
- branches whose final result failed as "truncated" (the engine's `rec.branches`): the target is
  0 of 120;
- first attempts cut off (stop_reason max_tokens in the emulator's record of the request), and of
  those, how many the engine's one retry with twice the budget rescued (the class was assessed);
- the list price of the usage the emulator reported for every request (its `usage` object, with
  the price table below), against the sum of the engine's `rec.usage.cost_usd`: within 2%.

The emulators run in this process (`ClaudeEmulator`), because the stats timeline of
`python -m emulators.claude` carries no `usage` (input, cache write and cache read tokens are
missing from it). Nothing here is timed, so sharing the event loop changes no figure.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
from dataclasses import dataclass, field
from typing import Final

from bench.calls import Call, Usage
from bench.engine_settings import engine_settings
from bench.photos import photo
from bench.targets import Figure, Target, arguments, exit_code, print_json, print_targets
from emulators.claude import ClaudeEmulator
from matrec.claude import Claude
from matrec.engine import Engine, Part
from matrec.errors import CallFailure, MatrecError
from matrec.results import Recommendation
from matrec.settings import DEFAULT_MODEL

SEEDS_PER_RUN: Final = 4
CONSULTATIONS_PER_SEED: Final = 5
CONSULTATIONS: Final = SEEDS_PER_RUN * CONSULTATIONS_PER_SEED
CLASSES: Final = 6
FIRST_SEED: Final = 1000
LATENCY_S: Final = 0.3  # nothing is timed: short calls keep the run short
COST_TOLERANCE: Final = 0.02
MTOK: Final = 1_000_000
CONTEXT: Final = "Wall bracket holding a 20 kg pump, indoors near a boiler, about 500 per year."


@dataclass(frozen=True)
class ListPrice:
    """USD per million tokens."""

    input_usd: float
    output_usd: float
    cache_write_5m_usd: float
    cache_write_1h_usd: float
    cache_read_usd: float

    def cost_usd(self, usage: Usage) -> float:
        """The list price of one response's usage."""
        return (
            usage.input_tokens * self.input_usd
            + usage.output_tokens * self.output_usd
            + usage.cache_write_5m_tokens * self.cache_write_5m_usd
            + usage.cache_write_1h_tokens * self.cache_write_1h_usd
            + usage.cache_read_tokens * self.cache_read_usd
        ) / MTOK


# Anthropic's list prices (https://platform.claude.com/docs/en/about-claude/pricing, "Model pricing"
# and "Prompt caching"), written here independently of matrec/models.py: claude-sonnet-5-5 input
# $2, output $10, 5-minute cache write $2.50, cache read $0.10 per million tokens; a 1-hour cache
# write is 2x the input price.
LIST_PRICES: Final = {"claude-sonnet-5-5": ListPrice(2.00, 10.00, 2.50, 4.00, 0.10)}


@dataclass
class Tally:
    """One run's counts and costs."""

    consultations: int = 0
    recommendations: int = 0
    branches: int = 0
    truncated_final: int = 0
    cut_off_first: int = 0
    rescued: int = 0
    aggregation_cut_off: int = 0
    list_usd: float = 0.0
    engine_usd: float = 0.0
    unpriced_requests: int = 0
    max_output_tokens: int = 0
    thinking_tokens: list[int] = field(default_factory=list)

    @property
    def cost_gap(self) -> float:
        """The engine's estimate against the list price, as a share of the list price."""
        return abs(self.engine_usd - self.list_usd) / self.list_usd if self.list_usd else 0.0


def count(tally: Tally, result: Recommendation | MatrecError, calls: list[Call]) -> None:
    """Add one consultation: its branches' outcomes, the emulator's cut-offs and both prices."""
    tally.consultations += 1
    price = LIST_PRICES[DEFAULT_MODEL]
    for call in calls:
        if call.usage is None:
            tally.unpriced_requests += call.status == 200
            continue
        tally.list_usd += price.cost_usd(call.usage)
        tally.max_output_tokens = max(tally.max_output_tokens, call.output_tokens or 0)
        tally.thinking_tokens.append(call.thinking_tokens or 0)
    if not isinstance(result, Recommendation):
        return  # no estimate to compare: its requests stay in the list price, and the run shows it
    tally.recommendations += 1
    tally.engine_usd += result.usage.cost_usd or 0.0
    tally.branches += len(result.branches)
    tally.truncated_final += sum(1 for b in result.branches if b.failure is CallFailure.TRUNCATED)
    assessed = {b.material.value for b in result.branches if b.ok}
    for material, attempts in _attempts(calls, "branch").items():
        if attempts[0].stop_reason == "max_tokens":
            tally.cut_off_first += 1
            tally.rescued += material in assessed
    tally.aggregation_cut_off += sum(1 for c in calls if c.kind == "aggregate" and c.stop_reason == "max_tokens")


def _attempts(calls: list[Call], kind: str) -> dict[str | None, list[Call]]:
    by_material: dict[str | None, list[Call]] = {}
    for call in calls:
        if call.kind == kind:
            by_material.setdefault(call.material, []).append(call)
    return by_material


async def one_seed(tally: Tally, seed: int, first_part: int) -> None:
    """Five consultations, one after another, against one emulator seeded `seed`."""
    async with ClaudeEmulator(api_key="bench-key", latency_s=LATENCY_S, seed=seed) as emulator:
        settings = engine_settings(emulator.base_url)
        client = Claude.from_settings(settings)
        engine = Engine(client, settings)
        try:
            for index in range(first_part, first_part + CONSULTATIONS_PER_SEED):
                before = len(emulator.requests)
                part = Part(image=photo(index), context=CONTEXT, label=f"part{index}")
                result: Recommendation | MatrecError
                try:
                    result = await engine.evaluate(part)
                except MatrecError as error:
                    result = error
                count(tally, result, [Call.of_record(r) for r in emulator.requests[before:]])
        finally:
            await client.aclose()


async def one_run(run: int) -> Tally:
    """20 consultations over four seeds not used by any other run."""
    tally = Tally()
    for index in range(SEEDS_PER_RUN):
        seed = FIRST_SEED + run * SEEDS_PER_RUN + index
        await one_seed(tally, seed, first_part=index * CONSULTATIONS_PER_SEED)
    return tally


def targets(tallies: list[Tally]) -> list[Target]:
    """The two targets and the figures beside them."""
    branches = CONSULTATIONS * CLASSES
    truncated = Figure.of([t.truncated_final for t in tallies])
    gap = Figure.of([t.cost_gap * 100 for t in tallies])
    recs = Figure.of([t.recommendations for t in tallies])
    return [
        Target(f"branches cut off in their final result, of {branches} per run", truncated.text(0), "0",
               truncated.high == 0),
        Target("consultations with a recommendation", recs.text(0), str(CONSULTATIONS), recs.low == CONSULTATIONS),
        Target("cost estimate vs list price of the reported usage, within 2% (%)", gap.text(3), "0",
               gap.high <= COST_TOLERANCE * 100),
        Target("first attempts cut off (emulator stop_reason max_tokens)",
               Figure.of([t.cut_off_first for t in tallies]).text(0), "-", None),
        Target("... of them rescued by the retry with twice the budget",
               Figure.of([t.rescued for t in tallies]).text(0), "all", None),
        Target("aggregations cut off at the first attempt", Figure.of([t.aggregation_cut_off for t in tallies]).text(0),
               "-", None),
    ]  # fmt: skip


def print_figures(tallies: list[Tally]) -> None:
    """Costs and thinking per run, for the README."""
    print(f"\n{CONSULTATIONS} consultations per run, default settings, emulator thinking on\n")
    print("| run | list price $ | engine estimate $ | gap | thinking tokens median / max | most output tokens |")
    print("|---|---|---|---|---|---|")
    for number, t in enumerate(tallies, 1):
        thinking = f"{statistics.median(t.thinking_tokens):,.0f} / {max(t.thinking_tokens):,}"
        print(f"| {number} | {t.list_usd:.4f} | {t.engine_usd:.4f} | {t.cost_gap:.3%} | {thinking} "
              f"| {t.max_output_tokens:,} |")  # fmt: skip


def main() -> None:
    """Run the benchmark; exits 1 if a target is missed."""
    args = arguments((__doc__ or "").splitlines()[0])
    tallies = [asyncio.run(one_run(run)) for run in range(args.runs)]
    print_figures(tallies)
    rows = targets(tallies)
    print_targets(rows)
    if any(t.unpriced_requests for t in tallies):
        print("\nSome answered requests reported no usage: the list price misses them.")
    if args.json:
        print_json(tallies)
    sys.exit(exit_code(rows))


if __name__ == "__main__":
    main()
