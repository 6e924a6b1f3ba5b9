"""Plain renderings of a recommendation: the JSON shape, and the names and footer shared by CLI and bot."""

from __future__ import annotations

from typing import Any

from matrec.errors import BadInputError, MatrecError
from matrec.materials import CLASS_ORDER, PROFILES, MaterialClass
from matrec.results import BranchResult, Recommendation

TYPICAL_VALUES_NOTE = "Property figures are typical class values, not design allowables."


def branch_json(result: BranchResult) -> dict[str, Any]:
    """One branch as JSON: status, score and the analysis, or the error."""
    analysis = result.analysis
    return {
        "material": result.material.value,
        "condition": result.condition,
        "status": result.status,
        "suitability": result.suitability,
        "recommended": analysis.recommended if analysis else None,
        "error": result.error,
        "failure": result.failure.value if result.failure else None,
        "analysis": analysis.model_dump(mode="json") if analysis else None,
        "usage": result.usage.model_dump(),
        "elapsed_s": round(result.elapsed_s, 3),
        "queued_s": round(result.queued_s, 3),
    }


def recommendation_json(rec: Recommendation) -> dict[str, Any]:
    """The `--json` object for one part."""
    return {
        "part": rec.part,
        "best": rec.best.value,
        "runner_up": rec.runner_up.value if rec.runner_up else None,
        "confidence": rec.confidence,
        "rationale": rec.rationale,
        "scores": {m.value: rec.scores.get(m) for m in CLASS_ORDER},
        "screened_out": [s.model_dump(mode="json") for s in rec.screened_out],
        "questions": rec.questions,
        "missing": [m.value for m in rec.missing],
        "notes": rec.notes,
        "strategy": rec.strategy.value,
        "mode": rec.mode.value,
        "branches": [branch_json(b) for b in rec.branches],
        "usage": {**rec.usage.total.model_dump(), "cost_usd": rec.usage.cost_usd, "calls": rec.usage.calls},
        "timing": {
            "wall_s": round(rec.timing.wall_s, 3),
            "critical_path_s": round(rec.timing.critical_path_s, 3),
            "slowest_branch_s": round(rec.timing.slowest_branch_s, 3),
            "aggregation_s": round(rec.timing.aggregation_s, 3),
            "prepare_s": round(rec.timing.prepare_s, 3),
        },
        "image": rec.image.model_dump() if rec.image else None,
    }


def error_json(part: str, error: MatrecError) -> dict[str, Any]:
    """The `--json` object for a part that got no recommendation."""
    kind = "bad_input" if isinstance(error, BadInputError) else "failed"
    return {"part": part, "best": None, "error": str(error), "error_kind": kind}


def label(material: MaterialClass) -> str:
    """A class's display name."""
    return PROFILES[material].label


def footer(rec: Recommendation) -> str:
    """Time, tokens and estimated cost, in one line."""
    usage = rec.usage.total
    tokens = usage.input_tokens + usage.output_tokens + usage.cache_write_tokens + usage.cache_read_tokens
    cached = f", {usage.cache_read_tokens:,} read from cache" if usage.cache_read_tokens else ""
    return (
        f"{rec.timing.wall_s:.1f} s, {rec.usage.calls} calls, {tokens:,} tokens{cached}, "
        f"~${rec.usage.cost_usd:.3f}. {TYPICAL_VALUES_NOTE}"
    )
