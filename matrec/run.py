"""One consultation in flight: its branches, its aggregation, and the recommendation they make.

Each branch is an independent job: every failure inside it (an API error, a deadline, a stream
that sends garbage, even a bug) becomes that branch's failed result with a reason, so siblings
keep running and the TaskGroup only ever sees cancellation. A branch's deadline counts from when
it was ready to start, so the wait for the cache primer is inside it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import pydantic

from matrec import aggregate, prompting
from matrec.aggregate import InvalidVerdictError, Verdict
from matrec.calltime import CallTiming
from matrec.choices import CacheStrategy, Mode, Strategy
from matrec.claude import Reply
from matrec.errors import CallFailure, ModelCallError, QuorumError, unexpected
from matrec.images import PreparedImage
from matrec.limiter import Priority
from matrec.materials import CLASS_ORDER, MaterialClass
from matrec.options import Part, RunOptions
from matrec.priming import PrimeGate
from matrec.progress import BranchStatus, ProgressSink, RunSnapshot, StageStatus
from matrec.results import BranchResult, Recommendation, TokenUsage
from matrec.retry import Ask, Trace
from matrec.schema import AggregateVerdict, BranchAnalysis
from matrec.single import run_single
from matrec.summary import recommendation
from matrec.tracker import Tracker

if TYPE_CHECKING:
    from matrec.engine import Engine

log = logging.getLogger(__name__)
T = TypeVar("T", bound=pydantic.BaseModel)


class Run:
    """One consultation in flight."""

    def __init__(
        self,
        engine: Engine,
        part: Part,
        images: tuple[PreparedImage, ...],
        options: RunOptions,
        sink: ProgressSink | None,
    ) -> None:
        self.engine = engine
        self.settings = engine.settings
        self.part = part
        self.images = images
        self.options = options
        self.shared_text = prompting.shared_text(part.context, photos=len(images))
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
        self.aggregation_usage: list[TokenUsage] = []
        self.calls = 0
        self.slowest_s = 0.0
        self.branch_path_s = 0.0
        self.aggregation_s = 0.0
        self.gate: PrimeGate | None = None

    async def execute(self, started: float, prepare_s: float) -> Recommendation:
        """Run the branches and the aggregation; raises QuorumError."""
        try:
            if self.options.mode is Mode.SINGLE:
                branches, verdict = await run_single(self)
            else:
                branches = await self._branches()
                self.check_quorum(branches)
                verdict = await self._aggregate(branches)
        except QuorumError as error:
            self.tracker.failed(str(error))
            raise
        result = recommendation(self, branches, verdict, started, prepare_s)
        self.tracker.done(result)
        return result

    # -- calls ----------------------------------------------------------------------------------

    def gate_for(self, calls: int) -> PrimeGate | None:
        """A cache-priming gate when caching is `prime` and more than one call shares the prefix."""
        if self.options.cache is CacheStrategy.PRIME and calls > 1:
            self.gate = PrimeGate(self.settings.prime_wait_s)
        return self.gate

    async def ask(
        self,
        request: Ask[T],
        *,
        priority: Priority,
        clock: CallTiming,
        trace: Trace,
        gate: PrimeGate | None = None,
        primer: bool = False,
        on_first_attempt: Callable[[], None] | None = None,
        what: str = "branch",
    ) -> Reply[T]:
        """One call through the retry loop, within the call deadline counted from `clock.ready`.

        Raises ModelCallError: when the deadline passes, the last failure seen (a rate limit, an
        overload) is what the error says, with the deadline.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() - (time.perf_counter() - clock.ready) + self.settings.branch_timeout_s

        def attempt() -> None:
            if clock.first_attempt is None:
                self.calls += 1
                if primer and gate is not None:
                    gate.arm()
                if on_first_attempt is not None:
                    on_first_attempt()
            clock.attempt()

        try:
            async with asyncio.timeout_at(deadline):
                if gate is not None and not primer:
                    clock.gate_wait_s = await gate.wait()
                return await self.engine.caller.ask(
                    request,
                    priority=priority,
                    deadline=deadline,
                    on_started=gate.open if primer and gate is not None else None,
                    on_attempt=attempt,
                    # a primer that failed wrote nothing to read: the others go at once
                    on_failure=gate.open if primer and gate is not None else None,
                    trace=trace,
                )
        except TimeoutError:
            raise trace.overrun(self.settings.branch_timeout_s, what) from None

    # -- branches -------------------------------------------------------------------------------

    async def _branches(self) -> list[BranchResult]:
        gate = self.gate_for(len(self.specs))
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(self._branch(i, material, condition, gate))
                for i, (material, condition) in enumerate(self.specs)
            ]
        return [task.result() for task in tasks]

    async def _branch(
        self, index: int, material: MaterialClass, condition: str | None, gate: PrimeGate | None
    ) -> BranchResult:
        clock = CallTiming()
        trace = Trace()
        primer = gate is not None and index == 0
        request = Ask(
            system=prompting.branch_system(),
            images=self.images,
            shared_text=self.shared_text,
            task_text=prompting.branch_task(material, condition),
            output=BranchAnalysis,
            max_tokens=self.settings.branch_max_tokens,
            effort=self.settings.branch_effort,
            cache_prefix=self.options.cache is CacheStrategy.PRIME,
        )
        failure: tuple[CallFailure, str] | None = None
        analysis: BranchAnalysis | None = None
        try:
            reply = await self.ask(
                request,
                priority=Priority.BRANCH,
                clock=clock,
                trace=trace,
                gate=gate,
                primer=primer,
                on_first_attempt=lambda: self.tracker.branch(index, BranchStatus.RUNNING),
            )
            analysis = reply.value
        except ModelCallError as error:
            failure = (error.kind, error.reason)
        except Exception as error:  # isolation boundary: a bug fails this branch only, and is logged
            log.exception("branch %s of %s failed unexpectedly", material.value, self.part.label)
            failure = (CallFailure.UNEXPECTED, unexpected(error))
        finally:
            if primer and gate is not None:
                gate.open()  # never leave the others waiting on a primer that failed
        result = self._result(material, condition, clock, trace.billed, analysis, failure)
        self.tracker.branch(index, BranchStatus.DONE if result.ok else BranchStatus.FAILED, result)
        return result

    def _result(
        self,
        material: MaterialClass,
        condition: str | None,
        clock: CallTiming,
        billed: list[TokenUsage],
        analysis: BranchAnalysis | None,
        failure: tuple[CallFailure, str] | None,
    ) -> BranchResult:
        queued_s, elapsed_s = clock.spans()
        self.slowest_s = max(self.slowest_s, elapsed_s)
        self.branch_path_s = max(self.branch_path_s, clock.gate_wait_s + elapsed_s)
        usage = TokenUsage.total(billed)
        self.branch_usage.append(usage)
        return BranchResult(
            material=material,
            condition=condition,
            status="ok" if analysis is not None else "failed",
            analysis=analysis,
            error=failure[1] if failure else None,
            failure=failure[0] if failure else None,
            usage=usage,
            queued_s=queued_s,
            elapsed_s=elapsed_s,
        )

    def check_quorum(self, branches: Sequence[BranchResult]) -> None:
        """Raise QuorumError when too few classes were assessed."""
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
        clock = CallTiming()
        trace = Trace()
        request = Ask(
            system=prompting.aggregator_system(),
            images=(),  # the aggregator compares the analyses; the photos are in them already
            shared_text=self.shared_text,
            task_text=prompting.aggregate_task(branches),
            output=AggregateVerdict,
            max_tokens=self.settings.aggregate_max_tokens,
            effort=self.settings.aggregate_effort,
            cache_prefix=False,
        )
        try:
            reply = await self.ask(request, priority=Priority.AGGREGATION, clock=clock, trace=trace, what="comparison")
            return aggregate.from_claude(reply.value, branches)
        except (ModelCallError, InvalidVerdictError) as error:
            return self._fallback(branches, str(error))
        except Exception as error:  # isolation boundary: fall back, and log the bug
            log.exception("the aggregation of %s failed unexpectedly", self.part.label)
            return self._fallback(branches, unexpected(error))
        finally:
            self.aggregation_s = clock.spans()[1]
            self.aggregation_usage.extend(trace.billed)

    def _fallback(self, branches: list[BranchResult], reason: str) -> Verdict:
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


def _first_error(branches: Sequence[BranchResult], material: MaterialClass) -> str:
    errors = [b.error for b in branches if b.material == material and b.error]
    return errors[0] if errors else "not analysed"
