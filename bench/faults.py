"""Fault benchmark: `python -m bench.faults [--runs N] [--json]`.

Two failures of Claude, scripted with the emulator's `fail(...)`. The emulator's HTTP API has no
fault injection (only `/_emulator/stats` and `/_emulator/reset`), so here it runs in this process
(`ClaudeEmulator` in the benchmark's own event loop), with thinking off: every call takes L = 1.0 s,
first byte at F = 0.3 s. Every figure comes from the emulator's records (arrival and finish times,
statuses), or from the benchmark's clock around `Engine.evaluate`.

- A hung first call. Default settings (cache `prime`): the primer (the first class, metal) hangs;
  measured is the time from the primer's arrival to the arrival of each of the other five branch
  requests. Target: all five within 2 s. Its ideal is the engine's bound on that wait,
  MATREC_PRIME_WAIT_S (1.5 s by default). The request timeout is set to 5 s so each run ends in
  seconds (the hung call then fails and is retried); the wait of the other five does not depend on it.
- A storm of six 429s, retry-after 1 s. Cache `none`, so all six branch requests arrive together
  and each gets a 429; the consultation should still assess all six classes. Its window (the first
  request's arrival to the engine's return) is set against 1 s + L (the branches, retried) + L (the
  aggregation). The same storm with the default cache `prime` is run too: the primer meets the
  first 429 alone (its failure releases the others, into the 429's pause), and the other five 429s
  fall on the next round together; only its classes assessed are held to a target.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from typing import Final

from bench.calls import Call, branch_calls
from bench.claude_process import FIRST_TOKEN_S, KEY
from bench.engine_settings import engine_settings
from bench.photos import photo
from bench.targets import Figure, Target, arguments, exit_code, print_json, print_targets
from emulators.claude import ClaudeEmulator, Fault
from matrec.choices import CacheStrategy
from matrec.claude import Claude
from matrec.engine import Engine, Part
from matrec.errors import MatrecError
from matrec.materials import CLASS_ORDER
from matrec.results import Recommendation

LATENCY_S: Final = 1.0  # L
CLASSES: Final = len(CLASS_ORDER)
PRIMER_CLASS: Final = CLASS_ORDER[0].value
OTHERS_START_TARGET_S: Final = 2.0
HANG_REQUEST_TIMEOUT_S: Final = 5.0
STORM_RETRY_AFTER_S: Final = 1.0
STORM_SIZE: Final = CLASSES
RATE_LIMITED_STATUS: Final = 429
CONTEXT: Final = "Wall bracket holding a 20 kg pump, indoors near a boiler, about 500 per year."


@dataclass(frozen=True)
class Outcome:
    """One consultation under a fault, as the emulator and the benchmark's clock saw it."""

    calls: list[Call]
    assessed: int  # classes with an analysis (0 when there was no recommendation)
    window_s: float  # first request's arrival to the engine's return
    prime_wait_s: float  # the engine's setting in force


async def consult(emulator: ClaudeEmulator, fault: Fault, match: str, **settings: object) -> Outcome:
    """One consultation with `fault` scripted for the first `STORM_SIZE` (or one) matching requests."""
    emulator.reset_stats()
    emulator.cache.clear()
    emulator.clear_faults()
    if fault is Fault.HANG:
        emulator.fail(fault, match=match, times=1)
    else:
        emulator.fail(fault, match=match, times=STORM_SIZE, retry_after_s=STORM_RETRY_AFTER_S)
    config = engine_settings(emulator.base_url, **settings)
    client = Claude.from_settings(config)
    result: Recommendation | MatrecError
    try:
        result = await Engine(client, config).evaluate(Part(image=photo(), context=CONTEXT, label="bracket"))
    except MatrecError as error:
        result = error
    finally:
        await client.aclose()
    returned = time.monotonic()
    calls = [Call.of_record(r) for r in emulator.requests]
    assessed = len({b.material for b in result.branches if b.ok}) if isinstance(result, Recommendation) else 0
    return Outcome(calls, assessed, returned - min(c.arrived_at for c in calls), config.prime_wait_s)


def others_after_primer_s(calls: list[Call]) -> list[float]:
    """Seconds from the primer's arrival to each other class's first request."""
    branches = branch_calls(calls)
    primer = branches[0]
    assert primer.material == PRIMER_CLASS, f"the first branch to arrive was {primer.material}, not the primer"
    firsts: dict[str | None, float] = {}
    for call in branches[1:]:
        if call.material != primer.material:
            firsts.setdefault(call.material, call.arrived_at - primer.arrived_at)
    return list(firsts.values())


async def run_all(runs: int) -> dict[str, list[Outcome]]:
    """Both faults, `runs` times each, against one in-process emulator."""
    async with ClaudeEmulator(api_key=KEY, latency_s=LATENCY_S, first_token_s=FIRST_TOKEN_S, thinking=False) as claude:
        hung = [
            await consult(claude, Fault.HANG, PRIMER_CLASS, request_timeout_s=HANG_REQUEST_TIMEOUT_S)
            for _ in range(runs)
        ]
        storm = [await consult(claude, Fault.RATE_LIMITED, "branch", cache=CacheStrategy.NONE) for _ in range(runs)]
        primed = [await consult(claude, Fault.RATE_LIMITED, "branch") for _ in range(runs)]
    return {"hung_primer": hung, "storm": storm, "storm_prime": primed}


def targets(results: dict[str, list[Outcome]]) -> list[Target]:
    """Both targets, with the figures that explain them."""
    hung, storm, primed = results["hung_primer"], results["storm"], results["storm_prime"]
    slowest = Figure.of([max(others_after_primer_s(o.calls)) for o in hung])
    started = Figure.of([len(others_after_primer_s(o.calls)) for o in hung])
    bound_s = hung[0].prime_wait_s
    served = Figure.of([sum(1 for c in o.calls if c.status == RATE_LIMITED_STATUS) for o in storm])
    assessed = Figure.of([o.assessed for o in storm])
    ideal_s = STORM_RETRY_AFTER_S + 2 * LATENCY_S
    window = Figure.of([o.window_s for o in storm])
    ratio = Figure.of([o.window_s / ideal_s for o in storm])
    primed_assessed = Figure.of([o.assessed for o in primed])
    return [
        Target("hung first call: the other five start within 2 s (primer arrival to the last of them)",
               slowest.text(2, "s"), f"{bound_s:g} s (MATREC_PRIME_WAIT_S)", slowest.high <= OTHERS_START_TARGET_S),
        Target("... other classes that started", started.text(0), str(CLASSES - 1), started.low == CLASSES - 1),
        Target("... classes assessed once the hung call timed out (5 s) and was retried",
               Figure.of([o.assessed for o in hung]).text(0), str(CLASSES), None),
        Target("storm of six 429s (retry-after 1 s): classes assessed", assessed.text(0), str(CLASSES),
               assessed.low == CLASSES),
        Target("... 429s served", served.text(0), str(STORM_SIZE), served.low == STORM_SIZE),
        Target("... window (first arrival to return)", window.text(2, "s"), f"{ideal_s:g} s (1 s + L + L)", None),
        Target("... window / ideal", ratio.text(3), "1", None),
        Target("the same storm with the default cache `prime`: classes assessed", primed_assessed.text(0),
               str(CLASSES), primed_assessed.low == CLASSES),
        Target("... window (the primer meets the first 429 alone, the other five the next round)",
               Figure.of([o.window_s for o in primed]).text(2, "s"), "n/a", None),
    ]  # fmt: skip


def main() -> None:
    """Run the benchmark; exits 1 if a target is missed."""
    args = arguments((__doc__ or "").splitlines()[0])
    results = asyncio.run(run_all(args.runs))
    rows = targets(results)
    print(f"\nFaults: emulator in this process, L = {LATENCY_S:g} s, F = {FIRST_TOKEN_S:g} s, {args.runs} runs each")
    print_targets(rows)
    if args.json:
        print_json({k: [(o.assessed, o.window_s, o.calls) for o in v] for k, v in results.items()})
    sys.exit(exit_code(rows))


if __name__ == "__main__":
    main()
