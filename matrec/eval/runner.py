"""Running an evaluation: every consultation of a plan through the engine, cached, under one bound.

    plan = EvalPlan(dataset=Path("datasets/example.jsonl"), modes=(Mode.SINGLE, Mode.PARALLEL))
    print(estimate(plan, settings).headline())
    results = await run_eval(plan, settings, cache_dir=Path(".matrec-eval-cache"))

One set of branch calls serves every strategy: a parallel or nested consultation runs with the
`claude` strategy and `vote` and `weighted` are computed from the branches it returned
(`matrec.aggregate`), so the strategies are compared on the same answers at no extra cost. Their
latency is the consultation's own critical path (`Timing.critical_path_s`: the longest branch
from when it was ready, then the aggregation; `vote` and `weighted` stop at the branches), never
the time it queued behind other cases. Each consultation's outcome (its Recommendation, or why
there is none) is one JSON file in the cache directory, keyed by everything that shapes the
answer, so an interrupted run resumes without paying twice.

Every consultation goes through engines that share one call limiter and one admission queue (one
engine per model and effort, since both are engine settings), so the whole run keeps the
configured concurrency however many cases, modes and repetitions it has.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import ipaddress
import json
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

from matrec import aggregate
from matrec.admission import Admission
from matrec.choices import Mode, Strategy
from matrec.claude import Claude
from matrec.engine import Engine
from matrec.errors import MatrecError, unexpected
from matrec.eval.dataset import Case, Dataset, load_dataset
from matrec.eval.estimate import estimate
from matrec.eval.metrics import Prediction
from matrec.eval.results import (
    Arm,
    ArmResults,
    Consultation,
    EvalPlan,
    EvalResults,
    Failure,
    Outcome,
    feeds,
    plan_consultations,
)
from matrec.limiter import Limiter
from matrec.materials import CLASS_ORDER, MaterialClass, grounding_table
from matrec.models import Effort
from matrec.options import Part, RunOptions
from matrec.results import Recommendation, TokenUsage
from matrec.settings import EngineSettings

__all__ = ["EvalPlan", "EvalProgress", "estimate", "prompt_hash", "run_eval"]

DEFAULT_CACHE_DIR_NAME = ".matrec-eval-cache"
CACHE_FORMAT = 1  # bump when a cached file's shape changes, so old files are not misread
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalProgress:
    """Where a run stands: consultations finished (run, read from the cache, or skipped) of the total."""

    done: int
    total: int
    cached: int
    failed: int
    skipped: int  # not started: the cost limit was reached
    cost_usd: float  # spent by this run so far (priced models only)


ProgressCallback = Callable[[EvalProgress], None]


class CachedOutcome(BaseModel):
    """One consultation's outcome as stored in the cache: the recommendation, or why there is none."""

    model_config = ConfigDict(frozen=True)

    format: int = CACHE_FORMAT
    key: dict[str, object]
    recommendation: Recommendation | None = None
    failure: str | None = None


def prompt_hash() -> str:
    """sha256 over every prompt file (by name) and the grounding table they embed."""
    digest = hashlib.sha256()
    folder = resources.files("matrec") / "prompts"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".md"):
            digest.update(entry.name.encode() + b"\0" + entry.read_bytes() + b"\0")
    digest.update(grounding_table().encode())
    return digest.hexdigest()


def matrec_version() -> str:
    """The installed matrec's version, or "unknown" when run from a source tree without metadata."""
    try:
        return importlib.metadata.version("matrec")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def is_emulated(base_url: str | None) -> bool:
    """Whether answers come from a loopback server (an emulator), not Anthropic's API."""
    if base_url is None:
        return False
    host = urlsplit(base_url).hostname or ""
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def run_eval(
    plan: EvalPlan,
    settings: EngineSettings,
    *,
    cache_dir: Path,
    on_progress: ProgressCallback | None = None,
    max_cost_usd: float | None = None,
    dataset: Dataset | None = None,
) -> EvalResults:
    """Run every consultation of `plan` (cached ones are read instead) and collect the predictions.

    Stops starting consultations once this run has spent `max_cost_usd` (the results say so);
    raises BadInputError for a bad dataset, ConfigError without an API key. Cancelling it keeps
    every finished consultation cached.
    """
    started = datetime.now(UTC)
    dataset = dataset or load_dataset(plan.dataset)
    expected = estimate(plan, settings, dataset)
    run = _EvalRun(plan, settings, dataset, cache_dir, on_progress, max_cost_usd)
    outcomes = await run.all()
    return EvalResults(
        plan=plan,
        cases=dataset.cases,
        started=started,
        finished=datetime.now(UTC),
        matrec_version=matrec_version(),
        prompt_hash=run.prompt_hash,
        emulated=run.emulated,
        base_url=settings.anthropic_base_url,
        estimate=expected,
        actual_cost_usd=None if run.unpriced else round(run.spent_usd, 6),
        actual_calls=run.calls,
        consultations=len(run.consultations),
        consultations_run=run.ran,
        consultations_cached=run.cached,
        arms=_arms(plan, run.consultations, outcomes, settings),
        failures=_failures(run.consultations, outcomes),
        stopped=run.stopped,
    )


class _EvalRun:
    """The consultations of one run, their shared bounds, and what they have spent."""

    def __init__(
        self,
        plan: EvalPlan,
        settings: EngineSettings,
        dataset: Dataset,
        cache_dir: Path,
        on_progress: ProgressCallback | None,
        max_cost_usd: float | None,
    ) -> None:
        self.plan = plan
        self.settings = settings
        self.dataset = dataset
        self.cases = {case.id: case for case in dataset.cases}
        self.cache_dir = cache_dir
        self.on_progress = on_progress
        self.max_cost_usd = max_cost_usd
        self.prompt_hash = prompt_hash()
        self.emulated = is_emulated(settings.anthropic_base_url)
        self.consultations = plan_consultations(plan, list(self.cases))
        self.limiter = Limiter(settings.concurrency)
        self.admission = Admission(settings.max_consultations)
        self.engines: dict[tuple[str, Effort], Engine] = {}
        self.spent_usd = 0.0
        self.unpriced: set[str] = set()
        self.calls = self.ran = self.cached = self.failed = self.skipped = self.done = 0
        self.stopped: str | None = None

    async def all(self) -> list[tuple[CachedOutcome, bool] | None]:
        """Every consultation's outcome (and whether it came from the cache) in plan order; None: not started."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        try:
            for model in self.plan.models:  # a missing API key (ConfigError) stops the run before it starts
                for effort in self.plan.efforts:
                    self.engine(model, effort)
            self._report()
            return list(await asyncio.gather(*(self.one(c) for c in self.consultations)))
        finally:
            for engine in self.engines.values():
                await engine.claude.aclose()

    async def one(self, consultation: Consultation) -> tuple[CachedOutcome, bool] | None:
        key = self.key(consultation)
        path = self.cache_dir / _file_name(consultation, key)
        outcome = _load(path, key)
        cached = outcome is not None
        if outcome is not None:
            self.cached += 1
        else:
            async with self.admission.ticket():
                if self.max_cost_usd is not None and self.spent_usd >= self.max_cost_usd:
                    self.stopped = (
                        f"stopped at the cost limit: ${self.spent_usd:.2f} spent of --max-cost "
                        f"${self.max_cost_usd:.2f}; consultations not started are left out"
                    )
                    self.skipped += 1
                    self.done += 1
                    self._report()
                    return None
                outcome = await self.consult(consultation, key)
            _store(path, outcome)
            self.ran += 1
        self.failed += outcome.recommendation is None
        self.done += 1
        self._report()
        return outcome, cached

    async def consult(self, consultation: Consultation, key: dict[str, object]) -> CachedOutcome:
        case = self.cases[consultation.case_id]
        engine = self.engine(consultation.model, consultation.effort)
        options = RunOptions.from_settings(engine.settings, mode=consultation.mode, strategy=consultation.strategy)
        try:
            part = await asyncio.to_thread(_part, self.dataset, case)
            rec = await engine.evaluate(part, options)
        except MatrecError as error:
            return CachedOutcome(key=key, failure=str(error))
        except Exception as error:  # isolation boundary: this consultation fails, the run goes on; logged
            log.exception("consultation %s failed unexpectedly", consultation)
            return CachedOutcome(key=key, failure=unexpected(error))
        self.calls += rec.usage.calls
        if rec.usage.cost_usd is None:
            self.unpriced.add(consultation.model)
        else:
            self.spent_usd += rec.usage.cost_usd
        return CachedOutcome(key=key, recommendation=rec)

    def engine(self, model: str, effort: Effort) -> Engine:
        """The engine for this model and effort; every one shares the run's limiter and admission."""
        found = self.engines.get((model, effort))
        if found is None:
            settings = _settings_for(self.settings, model, effort)
            found = Engine(Claude.from_settings(settings), settings, limiter=self.limiter)
            found.admission = self.admission
            self.engines[(model, effort)] = found
        return found

    def key(self, consultation: Consultation) -> dict[str, object]:
        """Everything that shapes a consultation's answer: a change in any of it misses the cache."""
        key: dict[str, object] = {
            **consultation.model_dump(mode="json"),
            "case": _case_hash(self.dataset, self.cases[consultation.case_id]),
            "prompts": self.prompt_hash,
            "emulated": self.emulated,
            "version": CACHE_FORMAT,
        }
        if consultation.mode is Mode.NESTED:
            key["conditions"] = list(self.settings.conditions)
        if consultation.mode is Mode.SINGLE and consultation.strategy is Strategy.VOTE:
            key["samples"] = self.settings.vote_samples
        return key

    def _report(self) -> None:
        if self.on_progress is not None:
            total = len(self.consultations)
            self.on_progress(EvalProgress(self.done, total, self.cached, self.failed, self.skipped, self.spent_usd))


def _settings_for(settings: EngineSettings, model: str, effort: Effort) -> EngineSettings:
    """The run's settings with the model and, for every call kind the evaluation makes, the effort."""
    return settings.model_copy(
        update={"model": model, "branch_effort": effort, "aggregate_effort": effort, "single_effort": effort}
    )


def _part(dataset: Dataset, case: Case) -> Part:
    path = dataset.image_path(case)
    images = (path.read_bytes(),) if path is not None else ()
    return Part(images=images, context=case.text, label=case.id)


def _case_hash(dataset: Dataset, case: Case) -> str:
    digest = hashlib.sha256(case.text.encode())
    path = dataset.image_path(case)
    if path is not None:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _file_name(consultation: Consultation, key: dict[str, object]) -> str:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    c = consultation
    readable = _UNSAFE_NAME.sub("_", f"{c.case_id}-{c.mode.value}-{c.strategy.value}-{c.effort}-r{c.repetition}")
    return f"{readable[:80]}-{digest}.json"


def _load(path: Path, key: dict[str, object]) -> CachedOutcome | None:
    """The cached outcome at `path` when it is for exactly `key`; None when absent or unreadable."""
    try:
        outcome = CachedOutcome.model_validate_json(path.read_bytes())
    except (OSError, ValueError):
        return None
    return outcome if json.loads(json.dumps(key)) == outcome.key else None


def _store(path: Path, outcome: CachedOutcome) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(outcome.model_dump_json(), encoding="utf-8")
    os.replace(partial, path)  # an interrupted write never leaves half a file to be read back


# -- turning consultations into predictions -------------------------------------------------------


def _arms(
    plan: EvalPlan,
    consultations: Sequence[Consultation],
    outcomes: Sequence[tuple[CachedOutcome, bool] | None],
    settings: EngineSettings,
) -> list[ArmResults]:
    """One ArmResults per (mode, strategy, effort, model) of the plan, in plan order."""
    found: dict[Arm, list[Outcome]] = {}
    for mode in plan.modes:
        for strategy in plan.strategies:
            for effort in plan.efforts:
                for model in plan.models:
                    found[Arm(mode=mode, strategy=strategy, effort=effort, model=model)] = []
    for consultation, entry in zip(consultations, outcomes, strict=True):
        if entry is None:
            continue
        outcome, cached = entry
        for strategy in feeds(consultation.mode, consultation.strategy, plan.strategies):
            arm = Arm(mode=consultation.mode, strategy=strategy, effort=consultation.effort, model=consultation.model)
            derived = _outcome(consultation, outcome, strategy, settings)
            found[arm].append(derived.model_copy(update={"cached": cached}))
    return [ArmResults(arm=arm, outcomes=items) for arm, items in found.items()]


def _outcome(
    consultation: Consultation, cached: CachedOutcome, strategy: Strategy, settings: EngineSettings
) -> Outcome:
    rec = cached.recommendation
    if rec is None:
        failed = Prediction(case_id=consultation.case_id, repetition=consultation.repetition, best=None)
        return Outcome(prediction=failed, failure=cached.failure)
    summaries = aggregate.summarize(rec.branches)
    branch_scores = {m: s.suitability for m, s in summaries.items()}
    usage, latency = rec.usage.total, rec.timing.critical_path_s
    if strategy is rec.strategy:
        best, runner_up, scores = rec.best, rec.runner_up, rec.scores
        cost = rec.usage.cost_usd
    else:
        verdict = (
            aggregate.vote(rec.branches)
            if strategy is Strategy.VOTE
            else aggregate.weighted(rec.branches, settings.weights)
        )
        best, runner_up, scores = verdict.best, verdict.runner_up, verdict.scores
        cost = rec.usage.cost_usd
        if rec.mode is not Mode.SINGLE:  # the aggregator call is not part of this strategy
            usage, latency = rec.usage.branches, rec.timing.branch_path_s
            prices = _settings_for(settings, consultation.model, consultation.effort).price_table
            cost = None if prices is None else round(usage.cost_usd(prices), 6)
    known = {m: float(s) for m, s in scores.items() if s is not None}
    prediction = Prediction(
        case_id=consultation.case_id,
        repetition=consultation.repetition,
        best=best,
        ranking=_ranking(best, runner_up, known),
        scores=known,
        latency_s=latency,
        cost_usd=cost,
        tokens=_tokens(usage),
    )
    return Outcome(prediction=prediction, branch_scores=branch_scores, calibrated_scores=known, calls=rec.usage.calls)


def _failures(
    consultations: Sequence[Consultation], outcomes: Sequence[tuple[CachedOutcome, bool] | None]
) -> list[Failure]:
    failures: list[Failure] = []
    for c, entry in zip(consultations, outcomes, strict=True):
        if entry is not None and entry[0].recommendation is None:
            reason = entry[0].failure or "no recommendation"
            failures.append(
                Failure(
                    case_id=c.case_id,
                    mode=c.mode,
                    effort=c.effort,
                    model=c.model,
                    repetition=c.repetition,
                    reason=reason,
                )
            )
    return failures


def _ranking(
    best: MaterialClass, runner_up: MaterialClass | None, scores: dict[MaterialClass, float]
) -> list[MaterialClass]:
    """Best, runner-up, then the other scored classes by score (ties in class order)."""
    head = [best] + ([runner_up] if runner_up is not None and runner_up != best else [])
    rest = sorted((m for m in scores if m not in head), key=lambda m: (-scores[m], CLASS_ORDER.index(m)))
    return head + rest


def _tokens(usage: TokenUsage) -> int:
    return usage.input_tokens + usage.output_tokens + usage.cache_write_tokens + usage.cache_read_tokens
