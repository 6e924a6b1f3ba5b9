"""Engine benchmark: `python -m bench.engine`.

Runs the engine through the real SDK against the Claude emulator in a separate process at a fixed
latency per call (1.0 s by default), and prints wall times, speedups, the ratio of wall time to
the critical path (slowest branch + aggregation), peak concurrency, tokens and estimated cost, and
whether each target holds.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import random
import statistics
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from PIL import Image

from matrec.choices import CacheStrategy, Mode
from matrec.claude import Claude
from matrec.engine import Engine, Part, RunOptions
from matrec.results import Recommendation
from matrec.settings import EngineSettings

KEY = "bench-key"
PHOTO_EDGE_PX = (2016, 1512)
PARTS_MANY = 30
CONCURRENCY_MANY = 16
CONCURRENCY_NESTED = 18
CONTEXT = "Wall bracket holding a 20 kg pump, indoors near a boiler, about 500 per year."


@dataclass
class Figures:
    """One scenario's measurements."""

    name: str
    wall_s: list[float] = field(default_factory=list)
    critical_s: list[float] = field(default_factory=list)
    branches_s: list[float] = field(default_factory=list)
    peak: int = 0
    calls: int = 0
    tokens: dict[str, int] = field(default_factory=dict)
    cost_usd: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def wall(self) -> float:
        return statistics.median(self.wall_s)

    @property
    def ratio(self) -> float:
        return statistics.median(w / c for w, c in zip(self.wall_s, self.critical_s, strict=True))


def photo(seed: int = 0) -> bytes:
    """A phone-like photo: noise over a gradient, as JPEG."""
    rng = random.Random(seed)
    width, height = PHOTO_EDGE_PX
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    noise = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    buffer = io.BytesIO()
    Image.blend(image, noise, 0.25).save(buffer, "JPEG", quality=88)
    return buffer.getvalue()


@asynccontextmanager
async def emulator_process(latency_s: float) -> AsyncIterator[str]:
    """Start `python -m emulators.claude` on its own core; yields its base URL."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "emulators.claude", "--latency-s", str(latency_s), "--api-key", KEY,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    base_url = (await process.stdout.readline()).decode().strip()
    try:
        yield base_url
    finally:
        process.terminate()
        await process.wait()


class Bench:
    """Scenarios against one emulator process."""

    def __init__(self, base_url: str, http: aiohttp.ClientSession) -> None:
        self.base_url = base_url
        self.http = http

    async def _stats(self, reset: bool = False) -> dict[str, Any]:
        if reset:
            async with self.http.post(f"{self.base_url}/_emulator/reset") as response:
                return dict(await response.json())
        async with self.http.get(f"{self.base_url}/_emulator/stats") as response:
            return dict(await response.json())

    async def scenario(
        self,
        name: str,
        runs: int,
        make: Callable[[Engine], Any],
        **settings: Any,
    ) -> Figures:
        figures = Figures(name)
        values = {"anthropic_api_key": KEY, "anthropic_base_url": self.base_url, "cache": CacheStrategy.NONE}
        engine_settings = EngineSettings.model_validate(values | settings)
        for _ in range(runs):
            await self._stats(reset=True)
            claude = Claude.from_settings(engine_settings)
            engine = Engine(claude, engine_settings)
            started = asyncio.get_running_loop().time()
            result = await make(engine)
            elapsed = asyncio.get_running_loop().time() - started
            await claude.aclose()
            stats = await self._stats()
            figures.peak = max(figures.peak, stats["peak_concurrency"])
            figures.calls = stats["requests"]
            recs = [r for r in (result if isinstance(result, list) else [result]) if isinstance(r, Recommendation)]
            figures.wall_s.append(elapsed)
            rec = recs[0]
            figures.critical_s.append(rec.timing.critical_path_s)
            figures.branches_s.append(rec.timing.wall_s - rec.timing.aggregation_s - rec.timing.prepare_s)
            total = rec.usage.total
            figures.tokens = total.model_dump()
            figures.cost_usd = rec.usage.cost_usd
            figures.extra["recommendations"] = len(recs)
        return figures


async def run(latency_s: float) -> dict[str, Figures]:
    """Every scenario; returns the figures by name."""
    image = photo()
    bracket = Part(image=image, context=CONTEXT, label="bracket")
    results: dict[str, Figures] = {}
    async with emulator_process(latency_s) as base_url, aiohttp.ClientSession() as http:
        bench = Bench(base_url, http)

        def one(**overrides: Any) -> Callable[[Engine], Any]:
            return lambda engine: engine.evaluate(bracket, RunOptions.from_settings(engine.settings, **overrides))

        results["sequential"] = await bench.scenario("sequential", 1, one(), concurrency=1)
        results["parallel"] = await bench.scenario("parallel", 3, one())
        results["parallel+prime"] = await bench.scenario("parallel+prime", 3, one(), cache=CacheStrategy.PRIME)
        results["single"] = await bench.scenario("single", 3, one(mode=Mode.SINGLE))
        results["nested"] = await bench.scenario("nested", 3, one(mode=Mode.NESTED), concurrency=CONCURRENCY_NESTED)
        parts = [Part(image=photo(seed), context=CONTEXT, label=f"part{seed}") for seed in range(PARTS_MANY)]
        for cache in (CacheStrategy.NONE, CacheStrategy.PRIME):
            name = f"many/{cache.value}"
            results[name] = await bench.scenario(
                name,
                1,
                lambda engine: engine.evaluate_many(parts),
                concurrency=CONCURRENCY_MANY,
                cache=cache,
            )
            ideal_s = max(math.ceil(results[name].calls / CONCURRENCY_MANY), 2) * latency_s
            results[name].extra["ideal_s"] = ideal_s
    return results


def report(results: dict[str, Figures], latency_s: float) -> list[tuple[str, str, bool]]:
    """Print the figures; returns (target, measured, met) rows."""
    print(f"\nEngine benchmark, emulator at {latency_s:g} s per call\n")
    print("| scenario | wall s | wall / critical path | peak concurrency | calls | tokens in/out/cache w/r | cost $ |")
    print("|---|---|---|---|---|---|---|")
    for f in results.values():
        t = f.tokens
        tokens = f"{t['input_tokens']}/{t['output_tokens']}/{t['cache_write_tokens']}/{t['cache_read_tokens']}"
        print(f"| {f.name} | {f.wall:.2f} | {f.ratio:.3f} | {f.peak} | {f.calls} | {tokens} | {f.cost_usd:.4f} |")
    seq, par, prime, nested = (results[k] for k in ("sequential", "parallel", "parallel+prime", "nested"))
    speedup = statistics.median(seq.branches_s) / statistics.median(par.branches_s)
    rows = [
        ("parallel wall / critical path <= 1.05", f"{par.ratio:.3f}", par.ratio <= 1.05),
        ("six branches >= 5.5x faster than sequential", f"{speedup:.2f}x", speedup >= 5.5),
        ("nested 6x3 at concurrency 18 <= 1.1x (one branch + aggregation)", f"{nested.ratio:.3f}", nested.ratio <= 1.1),
    ]
    for name in ("many/none", "many/prime"):
        many = results[name]
        ideal = many.extra["ideal_s"]
        rows.append((f"{name}: 30 parts, peak concurrency <= 16", str(many.peak), many.peak <= CONCURRENCY_MANY))
        rows.append(
            (f"{name}: total within 1.15x of the ideal {ideal:g} s", f"{many.wall:.2f} s = {many.wall / ideal:.3f}x",
             many.wall <= 1.15 * ideal)
        )  # fmt: skip
    saving = 1 - prime.cost_usd / par.cost_usd
    print(f"\nprime caching: cost {prime.cost_usd:.4f} vs {par.cost_usd:.4f} $ ({saving:.0%} less), ", end="")
    print(f"wall {prime.wall:.2f} vs {par.wall:.2f} s; single-prompt baseline {results['single'].wall:.2f} s")
    print("\n| target | measured | met |\n|---|---|---|")
    for target, measured, met in rows:
        print(f"| {target} | {measured} | {'yes' if met else 'NO'} |")
    return rows


def main() -> None:
    """Run the benchmark; exits 1 if a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-s", type=float, default=1.0)
    parser.add_argument("--json", action="store_true", help="also print the raw figures as JSON")
    args = parser.parse_args()
    results = asyncio.run(run(args.latency_s))
    rows = report(results, args.latency_s)
    if args.json:
        print(json.dumps({k: vars(v) for k, v in results.items()}, indent=1, default=str))
    sys.exit(0 if all(met for _, _, met in rows) else 1)


if __name__ == "__main__":
    main()
