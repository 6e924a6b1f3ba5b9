"""Plain renderings of a recommendation: the JSON shape and Markdown text shared by CLI and bot."""

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


def branch_markdown(result: BranchResult) -> str:
    """A branch's analysis in a few Markdown lines (or why it failed)."""
    name = label(result.material) + (f" ({result.condition.split(':')[0]})" if result.condition else "")
    analysis = result.analysis
    if analysis is None:
        return f"**{name}**: could not be assessed: {result.error}"
    verdict = "recommended" if analysis.recommended else "not recommended"
    lines = [f"**{name}**: {analysis.suitability}/10, {verdict}. {analysis.summary}"]
    lines.append("+ " + "; ".join(analysis.strengths))
    lines.append("- " + "; ".join(analysis.concerns))
    lines.append("Grades: " + ", ".join(analysis.example_grades))
    if analysis.hard_screen:
        lines.append(f"Screened out: {analysis.hard_screen}")
    return "\n".join(lines)


def recommendation_markdown(rec: Recommendation) -> str:
    """The whole recommendation as Markdown."""
    runner = f", runner-up **{label(rec.runner_up)}**" if rec.runner_up else ""
    lines = [f"**Best: {label(rec.best)}**{runner} (confidence: {rec.confidence})", "", rec.rationale, ""]
    scores = ", ".join(
        f"{m.value} {score:g}" if score is not None else f"{m.value} n/a" for m, score in rec.scores.items()
    )
    lines.append(f"Calibrated scores (1-10): {scores}")
    for screen in rec.screened_out:
        lines.append(f"Screened out: {screen.material.value}: {screen.reason}")
    if rec.missing:
        lines.append("Could not be assessed: " + ", ".join(m.value for m in rec.missing))
    if rec.questions:
        lines.append("Questions that would sharpen this: " + " ".join(rec.questions))
    lines.extend(rec.notes)
    lines.append(footer(rec))
    return "\n".join(lines)


def footer(rec: Recommendation) -> str:
    """Time, tokens and estimated cost, in one line."""
    usage = rec.usage.total
    tokens = usage.input_tokens + usage.output_tokens + usage.cache_write_tokens + usage.cache_read_tokens
    cached = f", {usage.cache_read_tokens:,} read from cache" if usage.cache_read_tokens else ""
    return (
        f"{rec.timing.wall_s:.1f} s, {rec.usage.calls} calls, {tokens:,} tokens{cached}, "
        f"~${rec.usage.cost_usd:.3f}. {TYPICAL_VALUES_NOTE}"
    )
