"""A finished run's branches and verdict, assembled into the Recommendation the caller gets."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from matrec.aggregate import Verdict
from matrec.images import PreparedImage
from matrec.materials import CLASS_ORDER
from matrec.results import BranchResult, ImageInfo, Recommendation, Timing, TokenUsage, UsageReport

if TYPE_CHECKING:
    from matrec.run import Run


def recommendation(
    run: Run, branches: list[BranchResult], verdict: Verdict, started: float, prepare_s: float
) -> Recommendation:
    """The Recommendation for `run`: verdict, branches, usage with its estimated cost, timing."""
    branch_usage = TokenUsage.total(run.branch_usage)
    aggregation_usage = TokenUsage.total(run.aggregation_usage)
    total = branch_usage + aggregation_usage
    prices = run.settings.price_table
    assessed = {b.material for b in branches if b.ok}
    images = [_image_info(image) for image in run.images]
    return Recommendation(
        part=run.part.label,
        context=run.part.context,
        best=verdict.best,
        runner_up=verdict.runner_up,
        rationale=verdict.rationale,
        confidence=verdict.confidence,
        scores=verdict.scores,
        screened_out=verdict.screened_out,
        questions=verdict.questions,
        strategy=run.options.strategy,
        mode=run.options.mode,
        branches=branches,
        missing=[m for m in CLASS_ORDER if m not in assessed],
        notes=verdict.notes,
        usage=UsageReport(
            branches=branch_usage,
            aggregation=aggregation_usage,
            total=total,
            cost_usd=None if prices is None else round(total.cost_usd(prices), 6),
            calls=run.calls,
            model=run.settings.model,
        ),
        timing=Timing(
            wall_s=time.perf_counter() - started,
            slowest_branch_s=run.slowest_s,
            prime_wait_s=run.gate.wait_s if run.gate is not None else 0.0,
            aggregation_s=run.aggregation_s,
            prepare_s=prepare_s,
            branch_path_s=run.branch_path_s,
        ),
        image=images[0] if images else None,
        images=images,
    )


def _image_info(image: PreparedImage) -> ImageInfo:
    return ImageInfo(
        media_type=image.media_type,
        width=image.width,
        height=image.height,
        original_width=image.original_width,
        original_height=image.original_height,
        encoded_bytes=image.encoded_bytes,
        sha256=image.sha256,
    )
