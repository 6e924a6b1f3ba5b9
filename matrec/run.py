"""One consultation in flight: its branches, its aggregation, and the recommendation they make."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from matrec import aggregate, prompting
from matrec.aggregate import InvalidVerdictError, Verdict
from matrec.errors import CallFailure, ModelCallError, QuorumError
from matrec.images import PreparedImage
from matrec.limiter import Priority
from matrec.materials import CLASS_ORDER, MaterialClass
from matrec.options import Part, RunOptions
from matrec.priming import PrimeGate
from matrec.progress import BranchStatus, ProgressSink, RunSnapshot, StageStatus
from matrec.results import BranchResult, ImageInfo, Recommendation, Timing, TokenUsage, UsageReport
from matrec.schema import AggregateVerdict, BranchAnalysis, SingleVerdict
from matrec.settings import CacheStrategy, Mode, Strategy
from matrec.tracker import Tracker

if TYPE_CHECKING:
    from matrec.engine import Engine


class Run:
    """One consultation in flight."""

    def __init__(
        self,
        engine: Engine,
        part: Part,
        image: PreparedImage | None,
        options: RunOptions,
        sink: ProgressSink | None,
    ) -> None:
        self.engine = engine
        self.settings = engine.settings
        self.part = part
        self.image = image
        self.options = options
        self.shared_text = prompting.shared_text(part.context, has_image=image is not None)
        specs: list[tuple[MaterialClass, str | None]] = (
            [(m, c) for m in CLASS_ORDER for c in options.conditions]
            if options.mode is Mode.NESTED
            else [(m, None) for m in CLASS_ORDER]
        )
        self.specs = specs
        snapshot = RunSnapshot(
            run_id=uuid.uuid4().hex[:12],
            part=part.label,
            mode=options.mode,
            strategy=options.strategy,
            branches=Tracker.branches(specs),
        )
        self.tracker = Tracker(snapshot, sink)
        self.branch_usage: list[TokenUsage] = []
        self.aggregation_usage = TokenUsage()
        self.calls = 0
        self.slowest_s = 0.0
        self.aggregation_s = 0.0
        self.gate: PrimeGate | None = None

    async def execute(self, started: float, prepare_s: float) -> Recommendation:
        """Run the branches and the aggregation; raises QuorumError."""
        try:
            if self.options.mode is Mode.SINGLE:
                branches, verdict = await self._single()
            else:
                branches = await self._branches()
                self._check_quorum(branches)
                verdict = await self._aggregate(branches)
        except QuorumError as error:
            self.tracker.failed(str(error))
            raise
        recommendation = self._recommendation(branches, verdict, started, prepare_s)
        self.tracker.done(recommendation)
        return recommendation

    # -- branches -------------------------------------------------------------------------------

    def _gate(self, calls: int) -> PrimeGate | None:
        if self.options.cache is CacheStrategy.PRIME and calls > 1:
            self.gate = PrimeGate()
        return self.gate

    async def _branches(self) -> list[BranchResult]:
        gate = self._gate(len(self.specs))
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(self._branch(i, material, condition, gate))
                for i, (material, condition) in enumerate(self.specs)
            ]
        return [task.result() for task in tasks]

    async def _branch(
        self, index: int, material: MaterialClass, condition: str | None, gate: PrimeGate | None
    ) -> BranchResult:
        queued_at = time.perf_counter()
        primer = gate if index == 0 else None
        if gate is not None and primer is None:
            await gate.wait()
        try:
            async with self.engine.limiter.slot(Priority.BRANCH):
                queued_s = time.perf_counter() - queued_at
                self.tracker.branch(index, BranchStatus.RUNNING)
                if primer is not None:
                    primer.arm()
                result = await self._call_branch(
                    material, condition, queued_s, primer.open if primer is not None else None
                )
        finally:
            if primer is not None:
                primer.open()  # never leave the others waiting on a primer that failed
        self.tracker.branch(index, BranchStatus.DONE if result.ok else BranchStatus.FAILED, result)
        return result

    async def _call_branch(
        self,
        material: MaterialClass,
        condition: str | None,
        queued_s: float,
        on_started: Callable[[], None] | None,
    ) -> BranchResult:
        started = time.perf_counter()
        timeout_s = self.settings.branch_timeout_s
        self.calls += 1
        try:
            async with asyncio.timeout(timeout_s):
                reply = await self.engine.claude.structured(
                    system=prompting.branch_system(),
                    image=self.image,
                    shared_text=self.shared_text,
                    task_text=prompting.branch_task(material, condition),
                    output=BranchAnalysis,
                    max_tokens=self.settings.branch_max_tokens,
                    cache_prefix=self.options.cache is CacheStrategy.PRIME,
                    on_started=on_started,
                )
        except ModelCallError as error:
            return self._failed(material, condition, error.kind, error.reason, queued_s, started)
        except TimeoutError:
            reason = f"no answer within the {timeout_s:g} s branch deadline"
            return self._failed(material, condition, CallFailure.TIMEOUT, reason, queued_s, started)
        elapsed_s = time.perf_counter() - started
        self.slowest_s = max(self.slowest_s, elapsed_s)
        self.branch_usage.append(reply.usage)
        return BranchResult(
            material=material,
            condition=condition,
            status="ok",
            analysis=reply.value,
            usage=reply.usage,
            queued_s=queued_s,
            elapsed_s=elapsed_s,
        )

    def _failed(
        self,
        material: MaterialClass,
        condition: str | None,
        kind: CallFailure,
        reason: str,
        queued_s: float,
        started: float,
    ) -> BranchResult:
        elapsed_s = time.perf_counter() - started
        self.slowest_s = max(self.slowest_s, elapsed_s)
        return BranchResult(
            material=material,
            condition=condition,
            status="failed",
            error=reason,
            failure=kind,
            queued_s=queued_s,
            elapsed_s=elapsed_s,
        )

    def _check_quorum(self, branches: Sequence[BranchResult]) -> None:
        assessed = {b.material for b in branches if b.ok}
        needed = min(self.options.quorum, len(CLASS_ORDER))
        if len(assessed) >= needed:
            return
        reasons = "; ".join(f"{m.value}: {_first_error(branches, m)}" for m in CLASS_ORDER if m not in assessed)
        raise QuorumError(
            f"Only {len(assessed)} of {len(CLASS_ORDER)} material classes could be assessed "
            f"(at least {needed} are needed for a recommendation). {reasons}."
        )

    # -- aggregation ----------------------------------------------------------------------------

    async def _aggregate(self, branches: list[BranchResult]) -> Verdict:
        self.tracker.aggregation(StageStatus.RUNNING)
        strategy = self.options.strategy
        if strategy is Strategy.WEIGHTED:
            verdict = aggregate.weighted(branches, self.options.weights)
        elif strategy is Strategy.VOTE:
            verdict = aggregate.vote(branches)
        else:
            verdict = await self._aggregate_with_claude(branches)
        self.tracker.aggregation(StageStatus.DONE)
        return verdict

    async def _aggregate_with_claude(self, branches: list[BranchResult]) -> Verdict:
        started = time.perf_counter()
        timeout_s = self.settings.branch_timeout_s
        try:
            async with self.engine.limiter.slot(Priority.AGGREGATION):
                self.calls += 1
                async with asyncio.timeout(timeout_s):
                    reply = await self.engine.claude.structured(
                        system=prompting.aggregator_system(),
                        image=None,
                        shared_text=self.shared_text,
                        task_text=prompting.aggregate_task(branches),
                        output=AggregateVerdict,
                        max_tokens=self.settings.aggregate_max_tokens,
                        cache_prefix=False,
                    )
            self.aggregation_usage = reply.usage
            return aggregate.from_claude(reply.value, branches)
        except (ModelCallError, InvalidVerdictError, TimeoutError) as error:
            reason = str(error) or f"no answer within {timeout_s:g} s"
            fallback = aggregate.weighted(branches, self.options.weights)
            note = f"Claude's comparison failed ({reason}); the deterministic weighted ranking is shown instead."
            return Verdict(
                fallback.best,
                fallback.runner_up,
                fallback.rationale,
                "low",
                fallback.scores,
                fallback.screened_out,
                notes=[note],
            )
        finally:
            self.aggregation_s = time.perf_counter() - started

    # -- single-prompt baseline -------------------------------------------------------------------

    async def _single(self) -> tuple[list[BranchResult], Verdict]:
        samples = self.options.samples if self.options.strategy is Strategy.VOTE else 1
        for index in range(len(self.specs)):
            self.tracker.branch(index, BranchStatus.RUNNING)
        gate = self._gate(samples)
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._single_call(i, gate)) for i in range(samples)]
        answers = [t.result() for t in tasks]
        verdicts = [a for a in answers if isinstance(a, SingleVerdict)]
        if not verdicts:
            reason = str(answers[0])
            for index in range(len(self.specs)):
                failed = BranchResult(material=self.specs[index][0], status="failed", error=reason)
                self.tracker.branch(index, BranchStatus.FAILED, failed)
            raise QuorumError(f"The single-prompt analysis failed: {reason}.")
        branches = self._single_branches(verdicts[0])
        self._check_quorum(branches)
        self.tracker.aggregation(StageStatus.RUNNING)
        strategy = self.options.strategy
        if strategy is Strategy.VOTE:
            verdict = aggregate.vote_samples(verdicts)
        elif strategy is Strategy.WEIGHTED:
            verdict = aggregate.weighted(branches, self.options.weights)
        else:
            verdict = aggregate.from_claude(verdicts[0], branches)
        self.tracker.aggregation(StageStatus.DONE)
        return branches, verdict

    async def _single_call(self, index: int, gate: PrimeGate | None) -> SingleVerdict | ModelCallError:
        primer = gate if index == 0 else None
        if gate is not None and primer is None:
            await gate.wait()
        started = time.perf_counter()
        try:
            async with self.engine.limiter.slot(Priority.BRANCH):
                self.calls += 1
                if primer is not None:
                    primer.arm()
                async with asyncio.timeout(self.settings.branch_timeout_s):
                    reply = await self.engine.claude.structured(
                        system=prompting.branch_system(),
                        image=self.image,
                        shared_text=self.shared_text,
                        task_text=prompting.single_task(),
                        output=SingleVerdict,
                        max_tokens=self.settings.branch_max_tokens * 4,
                        cache_prefix=self.options.cache is CacheStrategy.PRIME,
                        on_started=primer.open if primer is not None else None,
                    )
        except ModelCallError as error:
            return error
        except TimeoutError:
            reason = f"no answer within the {self.settings.branch_timeout_s:g} s deadline"
            return ModelCallError(CallFailure.TIMEOUT, reason)
        finally:
            if primer is not None:
                primer.open()
            self.slowest_s = max(self.slowest_s, time.perf_counter() - started)
        self.branch_usage.append(reply.usage)
        return reply.value

    def _single_branches(self, verdict: SingleVerdict) -> list[BranchResult]:
        by_class = {a.material: a for a in verdict.assessments}
        branches: list[BranchResult] = []
        for index, (material, _) in enumerate(self.specs):
            found = by_class.get(material)
            if found is None:
                result = BranchResult(
                    material=material, status="failed", error="the single answer did not cover this class"
                )
            else:
                analysis = BranchAnalysis.model_validate(found.model_dump(exclude={"material"}))
                result = BranchResult(material=material, status="ok", analysis=analysis, elapsed_s=self.slowest_s)
            self.tracker.branch(index, BranchStatus.DONE if result.ok else BranchStatus.FAILED, result)
            branches.append(result)
        return branches

    # -- result -----------------------------------------------------------------------------------

    def _recommendation(
        self, branches: list[BranchResult], verdict: Verdict, started: float, prepare_s: float
    ) -> Recommendation:
        prices = self.settings.prices
        branch_usage = TokenUsage.total(self.branch_usage)
        total = branch_usage + self.aggregation_usage
        assessed = {b.material for b in branches if b.ok}
        image = self.image
        return Recommendation(
            part=self.part.label,
            context=self.part.context,
            best=verdict.best,
            runner_up=verdict.runner_up,
            rationale=verdict.rationale,
            confidence=verdict.confidence,
            scores=verdict.scores,
            screened_out=verdict.screened_out,
            questions=verdict.questions,
            strategy=self.options.strategy,
            mode=self.options.mode,
            branches=branches,
            missing=[m for m in CLASS_ORDER if m not in assessed],
            notes=verdict.notes,
            usage=UsageReport(
                branches=branch_usage,
                aggregation=self.aggregation_usage,
                total=total,
                cost_usd=round(total.cost_usd(prices), 6),
                calls=self.calls,
            ),
            timing=Timing(
                wall_s=time.perf_counter() - started,
                slowest_branch_s=self.slowest_s,
                prime_wait_s=self.gate.wait_s if self.gate is not None else 0.0,
                aggregation_s=self.aggregation_s,
                prepare_s=prepare_s,
            ),
            image=None
            if image is None
            else ImageInfo(
                media_type=image.media_type,
                width=image.width,
                height=image.height,
                original_width=image.original_width,
                original_height=image.original_height,
                encoded_bytes=image.encoded_bytes,
                sha256=image.sha256,
            ),
        )


def _first_error(branches: Sequence[BranchResult], material: MaterialClass) -> str:
    errors = [b.error for b in branches if b.material == material and b.error]
    return errors[0] if errors else "not analysed"
