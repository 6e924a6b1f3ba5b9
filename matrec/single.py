"""The single-prompt baseline: one call scores all six classes (K calls when voting over samples)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from matrec import aggregate, prompting
from matrec.aggregate import Verdict
from matrec.calltime import CallTiming
from matrec.choices import CacheStrategy, Strategy
from matrec.errors import CallFailure, ModelCallError, QuorumError, unexpected
from matrec.limiter import Priority
from matrec.priming import PrimeGate
from matrec.progress import BranchStatus, StageStatus
from matrec.results import BranchResult
from matrec.retry import Ask, Trace
from matrec.schema import BranchAnalysis, SingleVerdict

if TYPE_CHECKING:
    from matrec.run import Run

log = logging.getLogger(__name__)


async def run_single(run: Run) -> tuple[list[BranchResult], Verdict]:
    """Ask once (or `samples` times for vote) for all six classes; raises QuorumError."""
    samples = run.options.samples if run.options.strategy is Strategy.VOTE else 1
    for index in range(len(run.specs)):
        run.tracker.branch(index, BranchStatus.RUNNING)
    gate = run.gate_for(samples)
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(_sample(run, i, gate)) for i in range(samples)]
    answers = [t.result() for t in tasks]
    verdicts = [a for a in answers if isinstance(a, SingleVerdict)]
    if not verdicts:
        reason = str(answers[0])
        for index in range(len(run.specs)):
            failed = BranchResult(material=run.specs[index][0], status="failed", error=reason)
            run.tracker.branch(index, BranchStatus.FAILED, failed)
        raise QuorumError(f"The single-prompt analysis failed: {reason}.")
    branches = _branches(run, verdicts[0])
    run.check_quorum(branches)
    run.tracker.aggregation(StageStatus.RUNNING)
    strategy = run.options.strategy
    if strategy is Strategy.VOTE:
        verdict = aggregate.vote_samples(verdicts)
    elif strategy is Strategy.WEIGHTED:
        verdict = aggregate.weighted(branches, run.options.weights)
    else:
        verdict = aggregate.from_claude(verdicts[0], branches)
    run.tracker.aggregation(StageStatus.DONE)
    return branches, verdict


async def _sample(run: Run, index: int, gate: PrimeGate | None) -> SingleVerdict | ModelCallError:
    clock = CallTiming()
    trace = Trace()
    primer = gate is not None and index == 0
    request = Ask(
        system=prompting.branch_system(),
        images=run.images,
        shared_text=run.shared_text,
        task_text=prompting.single_task(),
        output=SingleVerdict,
        max_tokens=run.settings.single_max_tokens,
        effort=run.settings.single_effort,
        cache_prefix=run.options.cache is CacheStrategy.PRIME,
    )
    try:
        reply = await run.ask(request, priority=Priority.BRANCH, clock=clock, trace=trace, gate=gate, primer=primer)
        return reply.value
    except ModelCallError as error:
        return error
    except Exception as error:  # isolation boundary: this sample fails, the bug is logged
        log.exception("a single-prompt sample for %s failed unexpectedly", run.part.label)
        return ModelCallError(CallFailure.UNEXPECTED, unexpected(error))
    finally:
        if primer and gate is not None:
            gate.open()
        _, elapsed_s = clock.spans()
        run.slowest_s = max(run.slowest_s, elapsed_s)
        run.branch_path_s = max(run.branch_path_s, clock.gate_wait_s + elapsed_s)
        run.branch_usage.extend(trace.billed)


def _branches(run: Run, verdict: SingleVerdict) -> list[BranchResult]:
    by_class = {a.material: a for a in verdict.assessments}
    branches: list[BranchResult] = []
    for index, (material, _) in enumerate(run.specs):
        found = by_class.get(material)
        if found is None:
            result = BranchResult(
                material=material, status="failed", error="the single answer did not cover this class"
            )
        else:
            analysis = BranchAnalysis.model_validate(found.model_dump(exclude={"material"}))
            result = BranchResult(material=material, status="ok", analysis=analysis, elapsed_s=run.slowest_s)
        run.tracker.branch(index, BranchStatus.DONE if result.ok else BranchStatus.FAILED, result)
        branches.append(result)
    return branches
