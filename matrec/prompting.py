"""Prompt texts: the files in `matrec/prompts/`, and the tagged user turns built around them."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib import resources

from matrec.materials import CLASS_ORDER, PROFILES, MaterialClass, grounding_table
from matrec.results import BranchResult

_NO_CONTEXT = (
    "No description was given. Judge from the photo alone and state what you assumed about the "
    "load, temperature, environment and quantity."
)
_NO_IMAGE = "There is no photo: judge from the description alone."
_SEVERAL_IMAGES = "The {count} photos above show the same part from different angles: judge them together, as one part."


@cache
def _load(name: str) -> str:
    return (resources.files("matrec") / "prompts" / f"{name}.md").read_text(encoding="utf-8").strip()


def _escape(text: str) -> str:
    """Keep user text from closing or opening our tags."""
    return text.replace("<", "&lt;").replace(">", "&gt;")


def _criteria_line(material: MaterialClass) -> str:
    return ", ".join(PROFILES[material].criteria)


@cache
def branch_system() -> str:
    """The system prompt shared by every specialist branch and the single-prompt baseline."""
    return _load("preamble").replace("{grounding_table}", grounding_table())


@cache
def aggregator_system() -> str:
    """The system prompt of the aggregation call."""
    return _load("aggregator").replace("{grounding_table}", grounding_table())


@cache
def followup_system() -> str:
    """The system prompt of follow-up questions on a finished consultation."""
    return _load("followup")


def followup_question(question: str, *, asker: str | None, current: bool) -> str:
    """One follow-up question as a user-turn text block; the current one carries the task tag."""
    parts = ["<task>follow_up</task>"] if current else []
    if asker:
        parts.append(f"<asker>{_escape(asker)}</asker>")
    parts.append(f"<question>\n{_escape(question.strip())}\n</question>")
    return "\n".join(parts)


def shared_text(context: str, *, photos: int) -> str:
    """The part's description: the cacheable part of the user turn, the same for every branch."""
    described = _escape(context.strip()) or _NO_CONTEXT
    lines = [f"<part_context>\n{described}\n</part_context>"]
    if photos == 0:
        lines.append(_NO_IMAGE)
    elif photos > 1:
        lines.append(_SEVERAL_IMAGES.format(count=photos))
    return "\n".join(lines)


def branch_task(material: MaterialClass, condition: str | None) -> str:
    """The branch-specific instructions, after the cached prefix."""
    parts = ["<task>branch</task>", f"<material_class>{material.value}</material_class>"]
    if condition is not None:
        parts.append(f"<operating_condition>{_escape(condition)}</operating_condition>")
        parts.append(
            "Judge the part as if it must work under this operating condition, in addition to "
            "what the description says."
        )
    parts.append(f"<specialist_brief>\n{_load(material.value)}\n</specialist_brief>")
    parts.append(
        f"Score exactly these criteria, using these names: {_criteria_line(material)}. Answer for your class only."
    )
    return "\n".join(parts)


def single_task() -> str:
    """The single-prompt baseline's instructions: all six classes in one answer."""
    criteria = "\n".join(f"- {m.value}: {_criteria_line(m)}" for m in CLASS_ORDER)
    return _load("single").replace("{criteria}", criteria)


def aggregate_task(branches: Sequence[BranchResult]) -> str:
    """The aggregation call's instructions: every analysis side by side (the part is in `shared_text`)."""
    parts = ["<task>aggregate</task>"]
    for result in branches:
        if result.analysis is None:
            continue
        condition = f' condition="{_escape(result.condition)}"' if result.condition else ""
        parts.append(
            f'<analysis material="{result.material.value}"{condition}>\n'
            f"{_escape(result.analysis.model_dump_json())}\n</analysis>"
        )
    assessed = {r.material for r in branches if r.ok}
    missing = [m for m in CLASS_ORDER if m not in assessed]
    if missing:
        reasons = {r.material: r.error for r in branches if not r.ok}
        listed = "\n".join(f"- {m.value}: {reasons.get(m) or 'not analysed'}" for m in missing)
        parts.append(f"<not_assessed>\n{listed}\n</not_assessed>")
    parts.append(
        "Compare the assessed classes side by side, recalibrate their scores, and choose the "
        "best class and the runner-up."
    )
    return "\n".join(parts)
