"""The engine end to end: real SDK, loopback Claude emulator, six branches and an aggregation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from emulators.claude import ClaudeEmulator, Fault
from matrec.choices import CacheStrategy, Mode, Strategy
from matrec.claude import Claude
from matrec.engine import Engine, Part, RunOptions
from matrec.errors import BadInputError, ConfigError, ImageError, QuorumError, RunTimeoutError
from matrec.materials import CLASS_ORDER, Dimension, MaterialClass
from matrec.progress import BranchStatus, EventKind, StageStatus
from matrec.settings import EngineSettings
from tests.engine_support import EventLog, engine_settings, jpeg_bytes, running_engine

M = MaterialClass
BRACKET = Part(image=jpeg_bytes(), context="Wall bracket for a 20 kg pump, indoors, 500 per year.", label="bracket")


@pytest.fixture
async def emulator() -> AsyncIterator[ClaudeEmulator]:
    async with ClaudeEmulator() as claude:
        yield claude


@pytest.fixture
async def engine(emulator: ClaudeEmulator) -> AsyncIterator[Engine]:
    async with running_engine(emulator) as engine:
        yield engine


def _options(engine: Engine, **overrides: object) -> RunOptions:
    return RunOptions.from_settings(engine.settings, **overrides)


async def test_six_branch_results_come_back_in_class_order(engine: Engine, emulator: ClaudeEmulator) -> None:
    rec = await engine.evaluate(BRACKET)
    assert [b.material for b in rec.branches] == list(CLASS_ORDER)
    assert all(b.status == "ok" for b in rec.branches)
    assert [b.suitability for b in rec.branches] == [emulator.scores[m.value] for m in CLASS_ORDER]
    assert (rec.best, rec.runner_up) == (M.METAL, M.POLYMER)
    assert rec.missing == []
    kinds = sorted(r.kind.kind for r in emulator.requests)
    assert kinds == ["aggregate"] + ["branch"] * 6


async def test_every_branch_gets_the_image_and_the_context(engine: Engine, emulator: ClaudeEmulator) -> None:
    await engine.evaluate(BRACKET)
    branches = [r for r in emulator.requests if r.kind.kind == "branch"]
    assert sorted(r.kind.material or "" for r in branches) == sorted(m.value for m in CLASS_ORDER)
    assert all(r.image_sizes == [(640, 480)] for r in branches)
    assert all("20 kg pump" in str(r.body["messages"]) for r in branches)
    (aggregation,) = [r for r in emulator.requests if r.kind.kind == "aggregate"]
    assert str(aggregation.body["messages"]).count("20 kg pump") == 1  # the part once, then the analyses


async def test_progress_reports_every_state_change_with_a_full_snapshot(engine: Engine) -> None:
    log = EventLog()
    rec = await engine.evaluate(BRACKET, on_progress=log)
    kinds = log.kinds()
    assert kinds[0] == EventKind.RUN_STARTED
    assert kinds.count(EventKind.BRANCH_RUNNING) == 6
    assert kinds.count(EventKind.BRANCH_DONE) == 6
    assert kinds[-3:] == [EventKind.AGGREGATION_RUNNING, EventKind.AGGREGATION_DONE, EventKind.RUN_DONE]
    for index in range(6):
        mine = [e.kind for e in log.events if e.branch == index]
        assert mine == [EventKind.BRANCH_RUNNING, EventKind.BRANCH_DONE]
    done = [e for e in log.events if e.kind is EventKind.BRANCH_DONE]
    assert [sum(b.status is BranchStatus.DONE for b in e.snapshot.branches) for e in done] == [
        1,
        2,
        3,
        4,
        5,
        6,
    ]
    final = log.events[-1].snapshot
    assert final.status is StageStatus.DONE and final.recommendation == rec


async def test_text_only_consultations_work(engine: Engine, emulator: ClaudeEmulator) -> None:
    rec = await engine.evaluate(Part(context="A gasket for a hot-water pipe flange, 90 C.", label="gasket"))
    assert rec.image is None and rec.best == M.METAL
    assert all(r.image_sizes == [] for r in emulator.requests)


FAULT_REASONS = [
    (Fault.RATE_LIMITED, "rate_limited", "rate limit"),
    (Fault.SPEND_LIMIT, "spend_limit", "spend limit"),
    (Fault.OVERLOADED, "overloaded", "overloaded"),
    (Fault.SERVER_ERROR, "server_error", "server error"),
    (Fault.TRUNCATED, "truncated", "cut off"),
    (Fault.REFUSAL, "refused", "declined"),
    (Fault.INVALID_OUTPUT, "invalid_output", "did not fit the schema"),
    (Fault.MALFORMED_JSON, "invalid_output", "did not fit the schema"),
    (Fault.OVERLOADED_MIDSTREAM, "overloaded", "overloaded"),
    (Fault.DROP_MIDSTREAM, "dropped", "dropped"),
]


@pytest.mark.parametrize(("fault", "failure", "reason"), FAULT_REASONS, ids=[f[0].value for f in FAULT_REASONS])
async def test_each_kind_of_branch_failure_still_yields_a_recommendation_naming_the_missing_class(
    emulator: ClaudeEmulator, fault: Fault, failure: str, reason: str
) -> None:
    emulator.fail(fault, match="ceramic", times=None, retry_after_s=0.01)
    # 429 and 529 are retried until the branch deadline: keep it short here
    async with running_engine(emulator, max_retries=1, branch_timeout_s=1.0) as engine:
        rec = await engine.evaluate(BRACKET)
    ceramic = rec.branches[CLASS_ORDER.index(M.CERAMIC)]
    assert ceramic.status == "failed" and ceramic.suitability is None
    assert ceramic.failure is not None and ceramic.failure.value == failure
    assert ceramic.error is not None and reason in ceramic.error
    assert rec.missing == [M.CERAMIC]
    assert rec.scores[M.CERAMIC] is None
    assert sum(b.ok for b in rec.branches) == 5


async def test_a_hung_branch_fails_at_its_deadline_and_the_others_finish(emulator: ClaudeEmulator) -> None:
    emulator.fail(Fault.HANG, match="wood", times=None)
    async with running_engine(emulator, branch_timeout_s=0.5, max_retries=0) as engine:
        rec = await engine.evaluate(BRACKET)
    wood = rec.branches[-1]
    assert wood.failure is not None and wood.failure.value == "timeout"
    assert wood.error is not None and "0.5 s" in wood.error
    assert rec.missing == [M.WOOD] and rec.best == M.METAL


async def test_a_transient_rate_limit_is_retried_and_the_branch_succeeds(
    emulator: ClaudeEmulator, engine: Engine
) -> None:
    emulator.fail(Fault.RATE_LIMITED, match="metal", times=1, retry_after_s=0.05)
    rec = await engine.evaluate(BRACKET)
    assert rec.missing == []
    assert sum(1 for r in emulator.requests if r.kind.material == "metal") == 2


async def test_below_the_quorum_the_run_fails_with_every_reason(emulator: ClaudeEmulator) -> None:
    for material in ("metal", "polymer", "ceramic"):
        emulator.fail(Fault.SERVER_ERROR, match=material, times=None)
    log = EventLog()
    async with running_engine(emulator, max_retries=0) as engine:
        with pytest.raises(QuorumError, match=r"Only 3 of 6 .*at least 4 are needed") as raised:
            await engine.evaluate(BRACKET, on_progress=log)
    assert all(m in str(raised.value) for m in ("metal:", "polymer:", "ceramic:"))
    assert log.events[-1].kind is EventKind.RUN_FAILED
    assert not any(r.kind.kind == "aggregate" for r in emulator.requests)


async def test_the_quorum_is_configurable(emulator: ClaudeEmulator) -> None:
    for material in ("metal", "polymer", "ceramic"):
        emulator.fail(Fault.SERVER_ERROR, match=material, times=None)
    async with running_engine(emulator, max_retries=0, quorum=3) as engine:
        rec = await engine.evaluate(BRACKET)
    assert rec.missing == [M.METAL, M.POLYMER, M.CERAMIC]
    assert rec.best == M.COMPOSITE


async def test_a_failed_aggregation_falls_back_to_the_weighted_ranking(emulator: ClaudeEmulator) -> None:
    emulator.fail(Fault.SERVER_ERROR, match="aggregate", times=None)
    async with running_engine(emulator, max_retries=0) as engine:
        rec = await engine.evaluate(BRACKET)
    assert rec.best == M.METAL and rec.confidence == "low"
    assert rec.notes and "comparison failed" in rec.notes[0]


async def test_the_claude_strategy_uses_the_aggregators_recalibrated_scores(
    emulator: ClaudeEmulator, engine: Engine
) -> None:
    emulator.responder = lambda request: (
        {
            "best": "polymer",
            "runner_up": "metal",
            "rationale": "Polymer wins at this volume; metal if loads rise.",
            "confidence": "medium",
            "questions": ["What is the peak load?"],
            "scores": [
                {"material": m.value, "score": s, "note": "n"}
                for m, s in zip(CLASS_ORDER, (7, 8, 2, 5, 2, 1), strict=True)
            ],
            "screened_out": [{"material": "ceramic", "reason": "brittle under impact"}],
        }
        if request.kind.kind == "aggregate"
        else None
    )
    rec = await engine.evaluate(BRACKET)
    assert (rec.best, rec.runner_up) == (M.POLYMER, M.METAL)
    assert rec.scores[M.METAL] == 7 and rec.scores[M.POLYMER] == 8
    assert rec.questions == ["What is the peak load?"]
    assert rec.screened_out[0].material == M.CERAMIC


async def test_the_vote_strategy_makes_no_aggregation_call(engine: Engine, emulator: ClaudeEmulator) -> None:
    rec = await engine.evaluate(BRACKET, _options(engine, strategy=Strategy.VOTE))
    assert rec.strategy is Strategy.VOTE
    assert (rec.best, rec.runner_up) == (M.METAL, M.POLYMER)  # both recommended: tie broken by suitability
    assert "Majority vote" in rec.rationale
    assert len(emulator.requests) == 6 and rec.usage.calls == 6


async def test_the_weighted_strategy_is_deterministic_and_makes_no_extra_call(
    engine: Engine, emulator: ClaudeEmulator
) -> None:
    weights = {d: 1.0 for d in Dimension} | {Dimension.COST: 3.0}
    first = await engine.evaluate(BRACKET, _options(engine, strategy=Strategy.WEIGHTED, weights=weights))
    second = await engine.evaluate(BRACKET, _options(engine, strategy=Strategy.WEIGHTED, weights=weights))
    assert (first.best, first.scores, first.rationale) == (second.best, second.scores, second.rationale)
    assert "cost 3" in first.rationale
    assert len(emulator.requests) == 12


async def test_nested_mode_runs_every_class_under_every_condition(engine: Engine, emulator: ClaudeEmulator) -> None:
    conditions = ("nominal", "hot: 120 C", "salt spray")
    rec = await engine.evaluate(BRACKET, _options(engine, mode=Mode.NESTED, conditions=conditions))
    assert len(rec.branches) == 18
    assert [(b.material, b.condition) for b in rec.branches[:3]] == [(M.METAL, c) for c in conditions]
    branch_requests = [r for r in emulator.requests if r.kind.kind == "branch"]
    assert sorted({r.kind.condition or "" for r in branch_requests}) == sorted(conditions)
    assert rec.usage.calls == 19 and rec.best == M.METAL


async def test_nested_mode_assesses_a_class_if_any_of_its_conditions_succeeded(
    emulator: ClaudeEmulator,
) -> None:
    emulator.fail(Fault.SERVER_ERROR, match="wood", times=2)
    async with running_engine(emulator, max_retries=0) as engine:
        rec = await engine.evaluate(BRACKET, _options(engine, mode=Mode.NESTED, strategy=Strategy.VOTE))
    wood = [b for b in rec.branches if b.material == M.WOOD]
    assert [b.ok for b in wood].count(False) == 2
    assert rec.missing == []


async def test_single_prompt_mode_scores_all_six_in_one_call(engine: Engine, emulator: ClaudeEmulator) -> None:
    rec = await engine.evaluate(BRACKET, _options(engine, mode=Mode.SINGLE))
    assert [r.kind.kind for r in emulator.requests] == ["single"]
    assert [b.suitability for b in rec.branches] == [emulator.scores[m.value] for m in CLASS_ORDER]
    assert (rec.best, rec.runner_up) == (M.METAL, M.POLYMER)


async def test_single_prompt_vote_asks_k_times_and_takes_the_majority(engine: Engine, emulator: ClaudeEmulator) -> None:
    rec = await engine.evaluate(BRACKET, _options(engine, mode=Mode.SINGLE, strategy=Strategy.VOTE, samples=3))
    assert len(emulator.requests) == 3
    assert rec.best == M.METAL and rec.confidence == "high"
    assert "3 independent answers" in rec.rationale


async def test_a_failed_single_prompt_call_is_a_clear_error(emulator: ClaudeEmulator) -> None:
    emulator.fail(Fault.REFUSAL, match="single", times=None)
    async with running_engine(emulator) as engine:
        with pytest.raises(QuorumError, match="single-prompt analysis failed: Claude declined"):
            await engine.evaluate(BRACKET, _options(engine, mode=Mode.SINGLE))


async def test_many_parts_are_evaluated_together_under_one_bound(emulator: ClaudeEmulator) -> None:
    emulator.latency_s = 0.05
    parts = [Part(image=jpeg_bytes(color=(i * 40, 90, 90)), label=f"part{i}") for i in range(4)]
    async with running_engine(emulator, concurrency=5) as engine:
        results = await engine.evaluate_many([*parts, Part(image=b"", label="empty")])
    assert [r.part for r in results[:4] if not isinstance(r, Exception)] == [
        "part0",
        "part1",
        "part2",
        "part3",
    ]
    assert isinstance(results[4], ImageError)
    assert emulator.peak_concurrency == 5
    assert len(emulator.requests) == 28


async def test_the_concurrency_bound_holds_across_two_simultaneous_runs(emulator: ClaudeEmulator) -> None:
    emulator.latency_s = 0.1
    async with running_engine(emulator, concurrency=4) as engine:
        first, second = await asyncio.gather(engine.evaluate(BRACKET), engine.evaluate(BRACKET))
    assert first.best == second.best == M.METAL
    assert emulator.peak_concurrency == 4
    assert engine.limiter.peak == 4 and engine.limiter.in_use == 0


async def test_the_run_deadline_stops_a_consultation_that_overruns(emulator: ClaudeEmulator) -> None:
    emulator.fail(Fault.HANG, match="aggregate", times=None)
    log = EventLog()
    async with running_engine(emulator, run_timeout_s=0.5, branch_timeout_s=30) as engine:
        with pytest.raises(RunTimeoutError, match=r"0\.5 s"):
            await engine.evaluate(BRACKET, on_progress=log)
    assert log.events[-1].kind is EventKind.RUN_FAILED


async def test_prime_caching_lets_five_branches_read_the_first_ones_prefix(emulator: ClaudeEmulator) -> None:
    emulator.latency_s = 0.2
    async with running_engine(emulator, cache=CacheStrategy.PRIME) as engine:
        rec = await engine.evaluate(BRACKET)
    branches = sorted((r for r in emulator.requests if r.kind.kind == "branch"), key=lambda r: r.arrived_at)
    primer_started = branches[0].started_at
    assert primer_started is not None
    assert all(r.arrived_at >= primer_started for r in branches[1:])
    writes = [b.usage.cache_write_tokens for b in rec.branches]
    reads = [b.usage.cache_read_tokens for b in rec.branches]
    assert sum(1 for w in writes if w) == 1 and sum(1 for r in reads if r) == 5
    assert rec.usage.total.cache_read_tokens == 5 * max(writes)
    assert 0 < rec.timing.prime_wait_s < rec.timing.slowest_branch_s


async def test_without_caching_no_request_asks_for_it(engine: Engine, emulator: ClaudeEmulator) -> None:
    rec = await engine.evaluate(BRACKET)
    assert "cache_control" not in str([r.body for r in emulator.requests])
    assert rec.usage.total.cache_read_tokens == rec.usage.total.cache_write_tokens == 0


async def test_usage_and_cost_are_reported_per_branch_and_in_total(engine: Engine) -> None:
    rec = await engine.evaluate(BRACKET)
    assert all(b.usage.input_tokens > 0 and b.usage.output_tokens > 0 for b in rec.branches)
    assert rec.usage.aggregation.output_tokens > 0
    total = rec.usage.total
    assert total.input_tokens == sum(b.usage.input_tokens for b in rec.branches) + rec.usage.aggregation.input_tokens
    # claude-sonnet-5-5 list prices, USD per million: input 2, output 10, cache write 2.50, cache read 0.10
    listed = (total.input_tokens * 2 + total.output_tokens * 10 + total.cache_write_tokens * 2.5) / 1e6
    listed += total.cache_read_tokens * 0.10 / 1e6
    assert rec.usage.cost_usd == pytest.approx(listed, abs=1e-6) and (rec.usage.cost_usd or 0) > 0
    assert rec.usage.model == "claude-sonnet-5-5"
    assert rec.timing.wall_s >= rec.timing.critical_path_s >= rec.timing.slowest_branch_s > 0


@pytest.mark.parametrize(
    ("part", "message"),
    [
        (Part(), "Nothing to analyse"),
        (Part(context="   "), "Nothing to analyse"),
        (Part(context="x" * 5000), "limit is 4,000"),
        (Part(image=b"GIF89a-broken"), "GIF"),
        (Part(image=b"%PDF-1.7 a drawing"), "PDF"),
    ],
)
async def test_bad_input_is_rejected_before_any_call(
    engine: Engine, emulator: ClaudeEmulator, part: Part, message: str
) -> None:
    with pytest.raises(BadInputError, match=message):
        await engine.evaluate(part)
    assert emulator.requests == []


def test_a_missing_api_key_is_a_config_error_saying_how_to_set_it() -> None:
    with pytest.raises(ConfigError, match="export ANTHROPIC_API_KEY="):
        Claude.from_settings(EngineSettings())


async def test_settings_point_the_engine_at_the_configured_base_url(emulator: ClaudeEmulator) -> None:
    settings = engine_settings(emulator)
    assert settings.anthropic_base_url == emulator.base_url
    async with running_engine(emulator) as engine:
        await engine.evaluate(Part(context="a hinge"))
    assert emulator.requests[0].headers["authorization"] == "Bearer test-key"
