"""One failure never takes the others down; retries honour Claude's asks within honest deadlines.

Real SDK, loopback Claude emulator. Timing facts are checked as orderings of what the emulator
saw (which request arrived before which ended), never as wall-clock thresholds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from emulators.claude import ClaudeEmulator, Fault, RecordedRequest
from matrec.choices import CacheStrategy
from matrec.engine import Part
from matrec.errors import MatrecError
from matrec.materials import CLASS_ORDER, MaterialClass
from matrec.progress import ProgressEvent
from matrec.results import Recommendation
from tests.engine_support import jpeg_bytes, running_engine

M = MaterialClass
BRACKET = Part(image=jpeg_bytes(), context="Wall bracket for a 20 kg pump, indoors, 500 per year.", label="bracket")


@pytest.fixture
async def emulator() -> AsyncIterator[ClaudeEmulator]:
    async with ClaudeEmulator() as claude:
        yield claude


def _requests(emulator: ClaudeEmulator, material: str) -> list[RecordedRequest]:
    return sorted((r for r in emulator.requests if r.kind.material == material), key=lambda r: r.arrived_at)


def _branch(rec: Recommendation, material: MaterialClass) -> str:
    result = rec.branches[CLASS_ORDER.index(material)]
    assert result.error is not None
    return result.error


async def test_a_storm_of_six_rate_limits_is_waited_out_and_every_class_is_assessed(
    emulator: ClaudeEmulator,
) -> None:
    emulator.fail(Fault.RATE_LIMITED, match="branch", times=6, retry_after_s=0.2)
    async with running_engine(emulator) as engine:
        rec = await engine.evaluate(BRACKET)
    assert rec.missing == [] and all(b.ok for b in rec.branches)
    assert [len(_requests(emulator, m.value)) for m in CLASS_ORDER] == [2] * 6


async def test_a_rate_limit_pauses_the_other_calls_for_its_retry_after(emulator: ClaudeEmulator) -> None:
    emulator.latency_s = 0.05
    emulator.fail(Fault.RATE_LIMITED, match="metal", times=1, retry_after_s=0.4)
    async with running_engine(emulator, concurrency=1) as engine:
        rec = await engine.evaluate(BRACKET)
    assert rec.missing == []
    limited = next(r for r in emulator.requests if r.status == 429)
    assert limited.finished_at is not None
    later = [r for r in emulator.requests if r.arrived_at > limited.arrived_at]
    # nothing was sent into the rate limit while its retry-after ran
    assert all(r.arrived_at - limited.finished_at >= 0.4 for r in later)


async def test_the_slot_is_free_while_a_call_backs_off_from_an_overload(emulator: ClaudeEmulator) -> None:
    emulator.fail(Fault.OVERLOADED, match="metal", times=1)  # a 529 with no retry-after: jittered backoff
    async with running_engine(emulator, concurrency=1) as engine:
        rec = await engine.evaluate(BRACKET)
    assert rec.missing == []
    first, second = _requests(emulator, "metal")
    between = [r for r in emulator.requests if first.arrived_at < r.arrived_at < second.arrived_at]
    assert between, "another branch used the only slot while metal slept"


async def test_a_retry_after_longer_than_the_time_left_fails_at_once_saying_how_long(
    emulator: ClaudeEmulator,
) -> None:
    emulator.fail(Fault.RATE_LIMITED, match="wood", times=None, retry_after_s=600)
    async with running_engine(emulator) as engine:
        rec = await engine.evaluate(BRACKET)
    assert "Claude's rate limit asks to wait 600 s" in _branch(rec, M.WOOD)
    assert len(_requests(emulator, "wood")) == 1
    assert rec.best == M.METAL and rec.timing.wall_s < 90


async def test_a_spend_limit_is_not_retried(emulator: ClaudeEmulator) -> None:
    emulator.fail(Fault.SPEND_LIMIT, match="wood", times=None)
    async with running_engine(emulator) as engine:
        rec = await engine.evaluate(BRACKET)
    assert "spend limit" in _branch(rec, M.WOOD) and len(_requests(emulator, "wood")) == 1


async def test_overloads_are_retried_until_the_branch_deadline_not_a_fixed_count(emulator: ClaudeEmulator) -> None:
    emulator.fail(Fault.OVERLOADED, match="wood", times=4, retry_after_s=0.05)
    async with running_engine(emulator, max_retries=1) as engine:
        rec = await engine.evaluate(BRACKET)
    assert rec.missing == [] and len(_requests(emulator, "wood")) == 5


async def test_server_errors_are_retried_max_retries_times_then_reported(emulator: ClaudeEmulator) -> None:
    emulator.fail(Fault.SERVER_ERROR, match="wood", times=None, retry_after_s=0.01)
    async with running_engine(emulator, max_retries=2) as engine:
        rec = await engine.evaluate(BRACKET)
    assert "server error (500" in _branch(rec, M.WOOD) and "gave up after 3 attempts" in _branch(rec, M.WOOD)
    assert len(_requests(emulator, "wood")) == 3


async def test_a_dropped_stream_is_retried_once(emulator: ClaudeEmulator) -> None:
    emulator.fail(Fault.DROP_MIDSTREAM, match="metal", times=1)
    emulator.fail(Fault.DROP_MIDSTREAM, match="wood", times=2)
    async with running_engine(emulator) as engine:
        rec = await engine.evaluate(BRACKET)
    assert len(_requests(emulator, "metal")) == 2 and rec.branches[0].ok
    assert "dropped mid-answer" in _branch(rec, M.WOOD) and len(_requests(emulator, "wood")) == 2


async def test_an_answer_cut_off_at_max_tokens_is_retried_once_with_twice_the_budget(
    emulator: ClaudeEmulator,
) -> None:
    emulator.fail(Fault.TRUNCATED, match="metal", times=1)
    emulator.fail(Fault.TRUNCATED, match="wood", times=2)
    async with running_engine(emulator, branch_max_tokens=4000) as engine:
        rec = await engine.evaluate(BRACKET)
    assert [r.body["max_tokens"] for r in _requests(emulator, "metal")] == [4000, 8000]
    assert rec.branches[0].ok
    assert "even after one retry" in _branch(rec, M.WOOD)
    # the cut-off answers were billed, so they are in the estimate
    wood = rec.branches[CLASS_ORDER.index(M.WOOD)]
    assert wood.usage.output_tokens > 0


async def test_a_hung_primer_holds_the_others_back_only_for_the_bound(emulator: ClaudeEmulator) -> None:
    emulator.fail(Fault.HANG, match="metal", times=None)
    async with running_engine(emulator, cache=CacheStrategy.PRIME, prime_wait_s=0.2, branch_timeout_s=3) as engine:
        rec = await engine.evaluate(BRACKET)
    (primer,) = _requests(emulator, "metal")
    others = [r for r in emulator.requests if r.kind.kind == "branch" and r.kind.material != "metal"]
    assert len(others) == 5 and all(r.status == 200 for r in others)
    assert primer.finished_at is not None
    assert all(r.arrived_at < primer.finished_at for r in others)  # they went while the primer still hung
    assert rec.missing == [M.METAL] and "3 s branch deadline" in _branch(rec, M.METAL)


async def test_the_branch_deadline_counts_the_wait_for_the_primer(emulator: ClaudeEmulator) -> None:
    emulator.latencies = {m.value: 0.4 for m in CLASS_ORDER}
    emulator.first_token_s = 0.35  # the primer's answer starts late
    async with running_engine(
        emulator, cache=CacheStrategy.PRIME, prime_wait_s=2.0, branch_timeout_s=0.6, quorum=1
    ) as engine:
        rec = await engine.evaluate(BRACKET)
    # ready at t=0, released at ~0.35 s, 0.4 s calls: past their 0.6 s deadline, counted from t=0
    assert rec.branches[0].ok
    assert all("0.6 s branch deadline" in (b.error or "") for b in rec.branches[1:])
    assert all(b.queued_s >= 0.3 for b in rec.branches[1:])


async def test_a_malformed_stream_chunk_fails_only_its_branch(emulator: ClaudeEmulator) -> None:
    emulator.fail(Fault.MALFORMED_CHUNK, match="ceramic", times=None)
    async with running_engine(emulator) as engine:
        rec = await engine.evaluate(BRACKET)
    assert rec.missing == [M.CERAMIC] and "not JSON" in _branch(rec, M.CERAMIC)
    assert sum(b.ok for b in rec.branches) == 5


async def test_a_malformed_chunk_in_one_image_leaves_the_other_images_of_the_batch_alone(
    emulator: ClaudeEmulator,
) -> None:
    # one consultation at a time: the first image's six branches and their one retry each get garbage
    emulator.fail(Fault.MALFORMED_CHUNK, match="branch", times=12)
    parts = [BRACKET.model_copy(update={"label": f"photo{i}"}) for i in range(3)]
    async with running_engine(emulator, max_consultations=1) as engine:
        results = await engine.evaluate_many(parts)
    assert isinstance(results[0], MatrecError) and "not JSON" in str(results[0])
    assert [r.part for r in results[1:] if isinstance(r, Recommendation)] == ["photo1", "photo2"]


async def test_a_progress_sink_that_raises_does_not_fail_the_consultation(
    emulator: ClaudeEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_renderer(event: ProgressEvent) -> None:
        raise RuntimeError(f"renderer bug at {event.kind.value}")

    async with running_engine(emulator) as engine:
        rec = await engine.evaluate(BRACKET, on_progress=broken_renderer)
    assert rec.missing == [] and rec.best == M.METAL
    assert "renderer bug" in caplog.text


async def test_a_primer_whose_attempt_failed_releases_the_others_at_once(emulator: ClaudeEmulator) -> None:
    emulator.fail(Fault.SERVER_ERROR, match="metal", times=1, retry_after_s=1.0)  # metal retries after 1 s
    async with running_engine(emulator, cache=CacheStrategy.PRIME, prime_wait_s=30) as engine:
        rec = await engine.evaluate(BRACKET)
    assert rec.missing == []
    failed, retried = _requests(emulator, "metal")
    others = [r for r in emulator.requests if r.kind.kind == "branch" and r.kind.material != "metal"]
    # they went when the primer's attempt failed, not when its retry began answering
    assert all(failed.arrived_at < r.arrived_at < retried.arrived_at for r in others)


async def test_image_decodes_are_bounded_however_many_consultations_run(emulator: ClaudeEmulator) -> None:
    parts = [Part(image=jpeg_bytes(3000, 2000, color=(i * 30, 90, 90)), label=f"photo{i}") for i in range(6)]
    async with running_engine(emulator, max_consultations=6, max_decodes=2) as engine:
        results = await engine.evaluate_many(parts)
    assert all(isinstance(r, Recommendation) for r in results)
    assert engine.admission.peak == 6 and engine.decodes_peak == 2


async def test_at_the_output_cap_a_cut_off_answer_is_retried_at_a_lower_effort(emulator: ClaudeEmulator) -> None:
    emulator.fail(Fault.TRUNCATED, match="metal", times=1)
    async with running_engine(emulator, branch_max_tokens=128_000, branch_effort="medium") as engine:
        rec = await engine.evaluate(BRACKET)
    first, second = _requests(emulator, "metal")
    assert first.body["max_tokens"] == second.body["max_tokens"] == 128_000
    assert [first.body["output_config"]["effort"], second.body["output_config"]["effort"]] == ["medium", "low"]
    assert rec.branches[0].ok


async def test_at_the_output_cap_a_model_without_effort_is_not_sent_the_same_request_again(
    emulator: ClaudeEmulator,
) -> None:
    emulator.fail(Fault.TRUNCATED, match="metal", times=1)
    async with running_engine(emulator, model="claude-haiku-4-5", branch_max_tokens=64_000) as engine:
        rec = await engine.evaluate(BRACKET)
    assert len(_requests(emulator, "metal")) == 1
    assert "at the model's output cap" in _branch(rec, M.METAL)


async def test_a_part_loader_runs_only_when_its_consultation_starts(emulator: ClaudeEmulator) -> None:
    loaded_after_requests: list[int] = []

    def loader(label: str) -> Part:
        loaded_after_requests.append(len(emulator.requests))  # how much Claude work came before
        return BRACKET.model_copy(update={"label": label})

    async with running_engine(emulator, max_consultations=1) as engine:
        results = await engine.evaluate_many([lambda: loader("first"), lambda: loader("second")])
    assert [r.part for r in results if isinstance(r, Recommendation)] == ["first", "second"]
    assert loaded_after_requests == [0, 7]  # the second photo was read once the first consultation ended
