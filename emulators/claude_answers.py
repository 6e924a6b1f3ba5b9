"""What the emulated Claude says: the kind of each request and a scripted, schema-valid answer.

The project's prompts follow tag conventions the emulator reads back:

    branch      <material_class>metal</material_class> [<operating_condition>...</operating_condition>]
    aggregate   <task>aggregate</task> and one <analysis material="..."> block per assessed class
    single      <task>single</task>
    follow_up   <task>follow_up</task>: a question about a consultation (`emulators.claude_followup`)
    generic     anything else

On top of a generic schema synthesis, fields are scripted by name from the request's
`Assessment` (`emulators.claude_assessment`: per-class scores that follow from the part's words and
photo), so tests can assert real outcomes: a branch's `suitability` is its class's score, its
dimension scores move with the rules that touched them, its `evidence` cites what moved them, an
aggregate's `best` is the highest-scoring class among those present, and so on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from emulators.claude_assessment import Assessment
from emulators.claude_followup import RERUN_TOOL, followup_answer
from emulators.claude_nudges import DIMENSIONS
from emulators.claude_schema import UNSCRIPTED, Context, Schema, SchemaSynthesizer, bounds
from matrec.materials import PROFILES, MaterialClass

CLASS_ORDER: Final = tuple(m.value for m in MaterialClass)
RECOMMEND_AT_SCORE: Final = 6
SCREEN_OUT_AT_OR_BELOW_SCORE: Final = 3
HIGH_CONFIDENCE_GAP: Final = 2
MAX_LIST_ITEMS: Final = 3

_TASK = re.compile(r"<task>\s*(\w+)\s*</task>")
_MATERIAL = re.compile(r"<material_class>\s*(\w+)\s*</material_class>")
_CONDITION = re.compile(r"<operating_condition>(.*?)</operating_condition>", re.DOTALL)
_ANALYSIS = re.compile(r"<analysis\b[^>]*\bmaterial=\"(\w+)\"")
_CRITERION_TAG = re.compile(r"<criterion>(.*?)</criterion>", re.DOTALL)
_GENERIC_CRITERIA: Final = ("fitness for the load", "environmental resistance", "cost at volume")

_GRADES: Final[Mapping[str, tuple[str, ...]]] = {
    "metal": ("6061-T6 aluminium", "304 stainless steel", "A36 steel"),
    "polymer": ("PA66-GF30", "POM-C", "polycarbonate"),
    "ceramic": ("99.5% alumina", "Si3N4", "Y-TZP zirconia"),
    "composite": ("CFRP (T700/epoxy)", "GFRP (E-glass/polyester)", "G10/FR4"),
    "elastomer": ("EPDM 70 Shore A", "NBR", "FKM (Viton)"),
    "wood": ("birch plywood", "white oak", "beech"),
}
_PROCESSES: Final[Mapping[str, tuple[str, ...]]] = {
    "metal": ("CNC machining (prototype)", "die casting (volume)"),
    "polymer": ("FDM or SLS printing (prototype)", "injection moulding (volume)"),
    "ceramic": ("green machining + sintering (prototype)", "powder pressing + sintering (volume)"),
    "composite": ("wet layup (prototype)", "RTM or SMC moulding (volume)"),
    "elastomer": ("cast urethane (prototype)", "compression moulding (volume)"),
    "wood": ("CNC routing (prototype)", "laminating + routing (volume)"),
}
_STRENGTH: Final[Mapping[str, str]] = {
    "metal": "high strength and stiffness",
    "polymer": "light and cheap to mould",
    "ceramic": "hard, wear- and heat-resistant",
    "composite": "best strength-to-weight",
    "elastomer": "flexible and vibration-damping",
    "wood": "cheap, light and easy to work",
}
_CONCERN: Final[Mapping[str, str]] = {
    "metal": "corrosion and weight",
    "polymer": "creep and heat softening",
    "ceramic": "brittle under impact",
    "composite": "cost and delamination",
    "elastomer": "low stiffness for a structural part",
    "wood": "moisture swelling and variability",
}

Kind = Literal["branch", "aggregate", "single", "follow_up", "generic"]


@dataclass(frozen=True)
class RequestKind:
    """What a request asks for, by the project's prompt conventions."""

    kind: Kind
    material: str | None = None
    condition: str | None = None


def _block_texts(content: Any) -> Iterable[str]:
    if isinstance(content, str):
        yield content
        return
    if not isinstance(content, list):
        return
    for block in content:
        if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
            yield block["text"]
        elif isinstance(block, dict) and block.get("type") == "tool_result":
            yield from _block_texts(block.get("content"))


def user_text(body: Mapping[str, Any]) -> str:
    """All text in the request's user turns."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return ""
    return "\n".join(
        text
        for message in messages
        if isinstance(message, dict) and message.get("role") == "user"
        for text in _block_texts(message.get("content"))
    )


def request_text(body: Mapping[str, Any]) -> str:
    """All text in the request: system prompt and every turn."""
    system = "\n".join(_block_texts(body.get("system")))
    messages = body.get("messages")
    turns = [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
    return "\n".join([system, *(t for m in turns for t in _block_texts(m.get("content")))])


def request_kind(body: Mapping[str, Any]) -> RequestKind:
    """Classify a Messages request body as a branch, aggregate, single, follow-up or generic request."""
    text = user_text(body)
    tasks = {task.lower() for task in _TASK.findall(text)}
    if "aggregate" in tasks:
        return RequestKind("aggregate")
    if "single" in tasks:
        return RequestKind("single")
    if "follow_up" in tasks:
        return RequestKind("follow_up")
    material = _MATERIAL.search(text)
    if material and material.group(1).lower() in CLASS_ORDER:
        condition = _CONDITION.search(text)
        return RequestKind("branch", material.group(1).lower(), condition.group(1).strip() if condition else None)
    return RequestKind("generic")


def assessed_classes(body: Mapping[str, Any]) -> list[str]:
    """Classes with an `<analysis material=...>` block in the user turns, in class order."""
    present = {m.lower() for m in _ANALYSIS.findall(user_text(body))}
    return [m for m in CLASS_ORDER if m in present]


def ranked(classes: Iterable[str], scores: Mapping[str, int]) -> list[str]:
    """`classes` best first; ties go to the earlier class in the canonical order."""
    return sorted(classes, key=lambda m: (-scores[m], CLASS_ORDER.index(m)))


def _criteria_in(text: str, material: str) -> list[str]:
    tagged = [c.strip() for c in _CRITERION_TAG.findall(text) if c.strip()]
    if tagged:
        return tagged
    lowered = text.lower()
    known = PROFILES[MaterialClass(material)].criteria
    return [c for c in known if c.lower() in lowered] or list(_GENERIC_CRITERIA)


class ScriptedAnswers:
    """A `FieldScript` that fills answers from the request's assessment."""

    def __init__(self, body: Mapping[str, Any], kind: RequestKind, assessment: Assessment) -> None:
        self._kind = kind
        self._assessment = assessment
        self._text = request_text(body)
        present = assessed_classes(body)
        if kind.kind == "branch" and kind.material:
            self._scope = [kind.material]
        elif kind.kind == "aggregate" and present:
            self._scope = present
        else:
            self._scope = list(CLASS_ORDER)
        scores = assessment.scores(CLASS_ORDER)
        order = ranked(self._scope, scores)
        runner_pool = order[1:] or [m for m in ranked(CLASS_ORDER, scores) if m != order[0]]
        self.best, self.runner_up = order[0], runner_pool[0]
        gap = self._score(self.best) - self._score(self.runner_up)
        self.confidence = "high" if gap >= HIGH_CONFIDENCE_GAP else "medium"
        self.screened = [m for m in self._scope if self._score(m) <= SCREEN_OUT_AT_OR_BELOW_SCORE]

    def _score(self, material: str) -> int:
        return self._assessment.score(material)

    def context(self) -> dict[str, str]:
        """The root context: the branch's class and condition, if any."""
        ctx = {"material": self._kind.material} if self._kind.material else {}
        return {**ctx, "condition": self._kind.condition} if self._kind.condition else ctx

    def item_contexts(self, name: str, item_schema: Schema, ctx: Context) -> list[dict[str, str]] | None:
        """Per-class items for class lists, per-criterion items for `criteria`."""
        properties = item_schema.get("properties", {})
        if "material" in properties:
            classes = self.screened if "screen" in name else self._scope
            return [{"material": m} for m in classes]
        if "criterion" in properties and "material" in ctx:
            return [{"criterion": c} for c in _criteria_in(self._text, ctx["material"])]
        return None

    def value(self, name: str, schema: Schema, ctx: Context) -> Any:
        """The scripted value of field `name`, or `UNSCRIPTED`."""
        verdict = {"best": self.best, "runner_up": self.runner_up, "confidence": self.confidence}
        if name in verdict and self._kind.kind != "branch":
            return verdict[name]
        if name == "rationale":
            return (
                f"{self.best} ({self._score(self.best)}/10) is preferred over {self.runner_up} "
                f"({self._score(self.runner_up)}/10) for this part. "
                f"The emulated specialists rated {self.best} higher on balance."
            )
        if name == "questions":
            return ["What is the peak service temperature?", "How many parts per year?"]
        material = ctx.get("material")
        if material is None:
            return UNSCRIPTED
        return self._class_value(name, schema, material, ctx)

    def _class_value(self, name: str, schema: Schema, material: str, ctx: Context) -> Any:
        score = self._score(material)
        recommended = score >= RECOMMEND_AT_SCORE
        limits = bounds(schema)
        if name == "material":
            return material
        if limits.get("minimum") == 1 and limits.get("maximum") == 10:
            return self._assessment.dimension(material, name) if name in DIMENSIONS else score
        condition = f" under {ctx['condition']}" if ctx.get("condition") else ""
        causes = self._assessment.causes(material)
        simple: dict[str, Any] = {
            "recommended": recommended,
            "hard_screen": None if recommended else f"{material} scores only {score}/10 for this part",
            "summary": summary(material, score, causes, condition),
            "criterion": ctx.get("criterion", UNSCRIPTED),
            "note": f"{ctx['criterion']}: {score}/10 for {material}"
            if "criterion" in ctx
            else f"{material} rated {score}/10",
            "reason": f"{material} scores only {score}/10 for this part",
            "example_grades": list(_GRADES[material]),
            "processes": list(_PROCESSES[material]),
            "strengths": [f"{material}: {_STRENGTH[material]}"],
            "concerns": [f"{material}: {_CONCERN[material]}"],
            "assumptions": [f"moderate load and volume for a {material} part{condition}"],
            "evidence": [*causes, *self._assessment.facts] or [f"the part's shape suits {material} processing"],
        }
        found = simple.get(name, UNSCRIPTED)
        return found[:MAX_LIST_ITEMS] if isinstance(found, list) else found


@dataclass(frozen=True)
class ReplyPlan:
    """How the answer is delivered: JSON text for a schema, a forced tool call, plain text, or text
    that may end with a call of one of the request's tools (`chat`: a follow-up with tools on auto)."""

    mode: Literal["json", "tool", "text", "chat"]
    schema: Schema | None = None
    tool_name: str | None = None


def plan_reply(body: Mapping[str, Any]) -> ReplyPlan:
    """Decide the answer's form; raises ValueError for a `tool_choice` naming no tool."""
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") in ("tool", "any") and tools:
        wanted = choice.get("name") if choice.get("type") == "tool" else tools[0].get("name")
        tool = next((t for t in tools if t.get("name") == wanted), None)
        if tool is None:
            raise ValueError(f"tool_choice.name: tool {wanted!r} is not in tools")
        schema = tool.get("input_schema") if isinstance(tool.get("input_schema"), dict) else {}
        return ReplyPlan("tool", schema, str(wanted))
    output = body.get("output_config")
    fmt = output.get("format") if isinstance(output, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        return ReplyPlan("json", fmt["schema"])
    if request_kind(body).kind == "follow_up":
        callable_tools = [] if isinstance(choice, dict) and choice.get("type") == "none" else _tool_names(body)
        return ReplyPlan("chat", tool_name=RERUN_TOOL if RERUN_TOOL in callable_tools else None)
    return ReplyPlan("text")


def _tool_names(body: Mapping[str, Any]) -> list[str]:
    return [str(t.get("name")) for t in body.get("tools") or [] if isinstance(t, dict)]


def summary(material: str, score: int, causes: list[str], condition: str = "") -> str:
    """One sentence verdict, naming what moved the score."""
    because = f": {'; '.join(causes)}" if causes else ""
    return f"{material.capitalize()} scores {score}/10 for this part{condition}{because}."


def synthesize(plan: ReplyPlan, body: Mapping[str, Any], kind: RequestKind, assessment: Assessment) -> Any:
    """The scripted answer: an object fitting the plan's schema, or a short text."""
    if plan.mode == "chat":
        return followup_answer(user_text(body), [plan.tool_name] if plan.tool_name else [])
    script = ScriptedAnswers(body, kind, assessment)
    if plan.schema is not None:
        return SchemaSynthesizer(plan.schema, script).synthesize(script.context())
    if kind.kind == "branch" and kind.material:
        return summary(kind.material, assessment.score(kind.material), assessment.causes(kind.material))
    if kind.kind in ("aggregate", "single"):
        return f"Best: {script.best}; runner-up: {script.runner_up}."
    return "Hello from the emulated Claude."
