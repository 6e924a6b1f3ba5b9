"""The evaluation runner and its cost estimate, against the Claude emulator.

Counts of the emulator's requests are the evidence that strategies share their calls and that the
cache saves them; the estimate is checked against sums done by hand from its stated assumptions.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from emulators.claude import ClaudeEmulator, Fault
from matrec import prompting
from matrec.choices import CacheStrategy, Mode, Strategy
from matrec.eval.estimate import EXPECTED_THINKING_TOKENS, estimate, image_tokens, text_tokens
from matrec.eval.metrics import top_k_accuracy
from matrec.eval.results import Estimate, EvalPlan, EvalResults
from matrec.eval.runner import EvalProgress, is_emulated, prompt_hash, run_eval
from matrec.models import Effort
from matrec.settings import EngineSettings
from tests.engine_support import engine_settings, jpeg_bytes

ALL_STRATEGIES = (Strategy.CLAUDE, Strategy.VOTE, Strategy.WEIGHTED)
CASES: list[dict[str, Any]] = [
    {"id": "bracket", "text": "Pump bracket, 20 °C, 5 kg load, 500 pieces a year", "expected": ["metal"]},
    {"id": "gasket", "text": "Hot-water gasket, 90 °C, must seal", "expected": ["elastomer", "polymer"]},
    {"id": "kiln", "text": "Kiln furniture shelf, 1200 °C", "expected": ["ceramic"]},
]


def _dataset(folder: Path, rows: list[dict[str, Any]] = CASES) -> Path:
    path = folder / "cases.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _settings(claude: ClaudeEmulator, **overrides: Any) -> EngineSettings:
    return engine_settings(claude, **{"vote_samples": 3, **overrides})


# -- the estimate ---------------------------------------------------------------------------------


def _offline(**overrides: Any) -> EngineSettings:
    values: dict[str, Any] = {"cache": CacheStrategy.NONE, "vote_samples": 3, **overrides}
    return EngineSettings.model_validate(values)


def test_the_estimate_counts_the_calls_each_mode_makes(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path, CASES[:2])
    settings = _offline(conditions=["dry", "wet"])

    def calls(modes: tuple[Mode, ...], strategies: tuple[Strategy, ...] = (Strategy.CLAUDE,)) -> int:
        return estimate(EvalPlan(dataset=dataset, modes=modes, strategies=strategies), settings).calls

    assert calls((Mode.PARALLEL,)) == 2 * 7  # six branches and the aggregator
    assert calls((Mode.NESTED,)) == 2 * (6 * 2 + 1)
    assert calls((Mode.SINGLE,)) == 2 * 1
    assert calls((Mode.PARALLEL,), ALL_STRATEGIES) == 2 * 7  # vote and weighted come from the same branches
    assert calls((Mode.PARALLEL,), (Strategy.VOTE, Strategy.WEIGHTED)) == 2 * 6  # no aggregator needed
    assert calls((Mode.SINGLE,), ALL_STRATEGIES) == 2 * (1 + 3)  # vote asks its 3 samples
    plan = EvalPlan(dataset=dataset, modes=(Mode.PARALLEL,), strategies=(Strategy.CLAUDE,), repetitions=3)
    assert estimate(plan, settings).calls == 3 * 2 * 7


def test_thinking_is_priced_as_output_at_the_efforts_expected_level(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path, CASES[:1])
    settings = _offline()

    def run(effort: Effort) -> Estimate:
        plan = EvalPlan(dataset=dataset, modes=(Mode.PARALLEL,), strategies=(Strategy.CLAUDE,), efforts=(effort,))
        return estimate(plan, settings)

    medium, high = run("medium"), run("high")
    assert medium.thinking_tokens == 7 * EXPECTED_THINKING_TOKENS["medium"]
    extra_thinking = 7 * (EXPECTED_THINKING_TOKENS["high"] - EXPECTED_THINKING_TOKENS["medium"])
    assert high.usd is not None and medium.usd is not None
    assert high.usd - medium.usd == pytest.approx(extra_thinking * 10.0 / 1e6, abs=1e-4)  # Sonnet 5.5: $10/MTok out
    assert "thinking" in medium.headline() and "medium ~700" in medium.note


def test_a_photo_costs_its_pixels_over_750_after_the_engines_downscale(tmp_path: Path) -> None:
    (tmp_path / "big.jpg").write_bytes(jpeg_bytes(3136, 2352))
    rows = [{"id": "photo", "image": "big.jpg", "expected": ["metal"]}]
    plan = EvalPlan(dataset=_dataset(tmp_path, rows), modes=(Mode.SINGLE,), strategies=(Strategy.CLAUDE,))
    assert image_tokens(3136, 2352, 1568) == 2459  # 1568 x 1176 / 750, rounded up
    assert image_tokens(750, 100, 1568) == 100
    assert estimate(plan, _offline()).image_tokens == 2459


def test_prompt_caching_turns_five_of_six_branch_prefixes_into_reads(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path, CASES[:1])
    plan = EvalPlan(dataset=dataset, modes=(Mode.PARALLEL,), strategies=(Strategy.VOTE,))  # branches only
    uncached = estimate(plan, _offline(cache=CacheStrategy.NONE)).usd
    cached = estimate(plan, _offline(cache=CacheStrategy.PRIME)).usd
    prefix = text_tokens(prompting.branch_system()) + text_tokens(prompting.shared_text(CASES[0]["text"], photos=0))
    # six full prefixes at $2/MTok against one write at $2.50 and five reads at $0.10
    assert uncached is not None and cached is not None
    assert uncached - cached == pytest.approx(prefix * (6 * 2.0 - 2.5 - 5 * 0.1) / 1e6, abs=1e-5)


def test_a_model_without_a_price_is_named_rather_than_guessed(tmp_path: Path) -> None:
    plan = EvalPlan(dataset=_dataset(tmp_path, CASES[:1]), models=("claude-sonnet-5-5", "claude-future-9"))
    found = estimate(plan, _offline())
    assert found.usd is None and found.unpriced == ["claude-future-9"]
    assert "no price for claude-future-9" in found.headline()


def test_emulated_means_a_loopback_base_url() -> None:
    assert is_emulated("http://127.0.0.1:8123") and is_emulated("http://localhost:1")
    assert not is_emulated(None) and not is_emulated("https://api.anthropic.com")
    assert len(prompt_hash()) == 64


# -- running ----------------------------------------------------------------------------------------


async def _run(claude: ClaudeEmulator, dataset: Path, cache: Path, **kwargs: Any) -> EvalResults:
    settings = _settings(claude, **kwargs.pop("settings", {}))
    plan = EvalPlan(
        dataset=dataset,
        modes=kwargs.pop("modes", (Mode.SINGLE, Mode.PARALLEL)),
        strategies=kwargs.pop("strategies", ALL_STRATEGIES),
    )
    return await run_eval(plan, settings, cache_dir=cache, **kwargs)


async def test_every_mode_and_strategy_gets_a_prediction_per_case(claude: ClaudeEmulator, tmp_path: Path) -> None:
    claude.latency_s = 0.01
    events: list[EvalProgress] = []
    results = await _run(claude, _dataset(tmp_path), tmp_path / "cache", on_progress=events.append)
    labels = [a.arm.label for a in results.arms]
    assert labels == [f"{m}+{s}" for m in ("single", "parallel") for s in ("claude", "vote", "weighted")]
    for arm in results.arms:
        assert [p.case_id for p in arm.predictions()] == ["bracket", "gasket", "kiln"]
        assert all(p.best is not None and p.latency_s and p.cost_usd and p.tokens for p in arm.predictions())
        assert all(o.branch_scores and o.calibrated_scores == o.prediction.scores for o in arm.outcomes)
    assert results.emulated and results.failures == [] and results.stopped is None
    assert results.actual_calls == len(claude.requests) == 3 * (1 + 3 + 7)
    assert results.estimate.calls == results.actual_calls
    assert results.actual_cost_usd == pytest.approx(sum(e.cost_usd for e in events[-1:]))
    assert [e.done for e in events] == list(range(10)) and events[-1].total == 9
    assert EvalResults.from_json(results.to_json()) == results


async def test_vote_and_weighted_reuse_the_branches_of_the_claude_run(claude: ClaudeEmulator, tmp_path: Path) -> None:
    results = await _run(claude, _dataset(tmp_path), tmp_path / "cache", modes=(Mode.PARALLEL,))
    kinds = [r.kind.kind for r in claude.requests]
    assert (kinds.count("branch"), kinds.count("aggregate"), len(kinds)) == (18, 3, 21)
    claude_arm = results.arm(Mode.PARALLEL, Strategy.CLAUDE)
    for strategy in (Strategy.VOTE, Strategy.WEIGHTED):
        derived = results.arm(Mode.PARALLEL, strategy)
        for mine, theirs in zip(derived.outcomes, claude_arm.outcomes, strict=True):
            assert mine.branch_scores == theirs.branch_scores  # the same answers
            assert mine.prediction.cost_usd is not None and theirs.prediction.cost_usd is not None
            assert mine.prediction.cost_usd < theirs.prediction.cost_usd  # without the aggregator call


async def test_latency_is_each_consultations_own_path_not_its_wait_in_the_queue(
    claude: ClaudeEmulator, tmp_path: Path
) -> None:
    claude.latency_s = 0.05
    results = await _run(
        claude, _dataset(tmp_path), tmp_path / "cache", modes=(Mode.PARALLEL,), settings={"max_consultations": 1}
    )
    wall_s = (results.finished - results.started).total_seconds()
    latencies = [p.latency_s or 0.0 for p in results.arm(Mode.PARALLEL, Strategy.CLAUDE).predictions()]
    # One at a time: had queueing counted, the third would include the first two, and the sum would exceed the wall.
    assert all(latency >= 0.1 for latency in latencies)  # a branch call, then the aggregator's
    assert sum(latencies) <= wall_s


async def test_a_consultation_without_a_recommendation_is_a_prediction_without_best(
    claude: ClaudeEmulator, tmp_path: Path
) -> None:
    claude.fail(Fault.REFUSAL, match="single", times=None)
    results = await _run(claude, _dataset(tmp_path), tmp_path / "cache", strategies=(Strategy.CLAUDE,))
    single = results.arm(Mode.SINGLE, Strategy.CLAUDE)
    assert [p.best for p in single.predictions()] == [None, None, None]
    assert all(o.failure and "declined" in o.failure for o in single.outcomes)
    assert top_k_accuracy(single.predictions(), results.cases) == 0.0
    assert [(f.case_id, f.mode) for f in results.failures] == [(c["id"], Mode.SINGLE) for c in CASES]
    assert all(p.best is not None for p in results.arm(Mode.PARALLEL, Strategy.CLAUDE).predictions())


async def test_a_second_run_reads_every_consultation_from_the_cache(claude: ClaudeEmulator, tmp_path: Path) -> None:
    dataset, cache = _dataset(tmp_path), tmp_path / "cache"
    first = await _run(claude, dataset, cache)
    claude.reset_stats()
    second = await _run(claude, dataset, cache)
    assert claude.requests == []
    assert (second.consultations_cached, second.consultations_run, second.actual_calls) == (9, 0, 0)
    for before, after in zip(first.arms, second.arms, strict=True):
        assert before.predictions() == after.predictions()
        assert all(o.cached for o in after.outcomes)


async def test_a_changed_case_text_misses_the_cache(claude: ClaudeEmulator, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    await _run(claude, _dataset(tmp_path), cache, modes=(Mode.SINGLE,), strategies=(Strategy.CLAUDE,))
    claude.reset_stats()
    changed = [{**CASES[0], "text": "Pump bracket, 150 °C"}, *CASES[1:]]
    await _run(claude, _dataset(tmp_path, changed), cache, modes=(Mode.SINGLE,), strategies=(Strategy.CLAUDE,))
    assert len(claude.requests) == 1


async def test_an_interrupted_run_resumes_without_repeating_finished_consultations(
    claude: ClaudeEmulator, tmp_path: Path
) -> None:
    dataset, cache = _dataset(tmp_path), tmp_path / "cache"
    task: asyncio.Task[EvalResults] | None = None

    def stop_after_the_first(event: EvalProgress) -> None:
        if event.done == 1 and task is not None:
            task.cancel()

    task = asyncio.create_task(
        _run(
            claude,
            dataset,
            cache,
            modes=(Mode.PARALLEL,),
            on_progress=stop_after_the_first,
            settings={"max_consultations": 1},
        )
    )
    with pytest.raises(asyncio.CancelledError):
        await task
    made = len(claude.requests)
    claude.reset_stats()
    resumed = await _run(claude, dataset, cache, modes=(Mode.PARALLEL,))
    assert resumed.consultations_cached >= 1
    assert made + len(claude.requests) <= 3 * 7 + 7  # at most the one cancelled mid-flight is paid twice
    assert len(claude.requests) == 7 * resumed.consultations_run


async def test_max_cost_stops_starting_consultations(claude: ClaudeEmulator, tmp_path: Path) -> None:
    events: list[EvalProgress] = []
    results = await _run(
        claude,
        _dataset(tmp_path),
        tmp_path / "cache",
        modes=(Mode.PARALLEL,),
        max_cost_usd=0.000_001,
        on_progress=events.append,
        settings={"max_consultations": 1},
    )
    assert results.consultations_run == 1 and len(claude.requests) == 7
    assert results.stopped is not None and "--max-cost" in results.stopped
    assert [len(a.outcomes) for a in results.arms] == [1, 1, 1]
    assert (events[-1].done, events[-1].skipped) == (3, 2)


async def test_nested_mode_makes_the_calls_the_estimate_counts(claude: ClaudeEmulator, tmp_path: Path) -> None:
    dataset = _dataset(tmp_path, CASES[:1])
    settings = _settings(claude, conditions=["dry", "wet"])
    plan = EvalPlan(dataset=dataset, modes=(Mode.NESTED,), strategies=ALL_STRATEGIES)
    results = await run_eval(plan, settings, cache_dir=tmp_path / "cache")
    assert len(claude.requests) == results.actual_calls == estimate(plan, settings).calls == 6 * 2 + 1
    assert all(a.predictions()[0].best is not None for a in results.arms)
