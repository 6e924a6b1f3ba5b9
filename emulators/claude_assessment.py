"""How the emulated specialists judge a part: per-class scores that follow from what the request carries.

Every class starts from its base score (`DEFAULT_SCORES`: metal 8, polymer 7, composite 6,
ceramic 4, elastomer 3, wood 2) and is nudged by what the request says and shows. The text read is
the part's description (`<part_context>`) and the branch's `<operating_condition>`; a request
without those tags is read whole, minus specialists' briefs and earlier analyses.

    in the text                                         nudges (dimension)
    gasket, seal, o-ring, damping, damper, grip,        elastomer +3 (performance)
      vibration, bumper, flexible, hose, bellows
    lightweight, drone, racing, aerospace, UAV, bike    composite +3, metal -1 (weight)
    furniture, bench, chair, table, shelf, cabinet      wood +6 (performance), metal -1 (cost)
    outdoor, outside, rain, sunlight, UV                metal -1, polymer -1 (UV), wood -2 (environment)
    wet, humid, damp, condensation                      metal -1, wood -2 (environment)
    salt, marine, sea, seawater, underwater, boat,      metal -2, wood -2, polymer +1, composite +1
      coastal                                             (environment: plain steel corrodes)
    impact, drop, shock, hammer                         ceramic -2 (performance)
    wear, abrasion, abrasive, cutting, nozzle           ceramic +2 (performance)
    insulator, insulating, dielectric, high voltage     ceramic +1, polymer +1, metal -3 (performance)
    N a year / per year / annually, N >= 10,000         polymer +2, metal -1 (cost); N >= 100,000: polymer +3
    N a year with N <= 10, "one-off", "prototype"       polymer -2 (cost: no mould pays off)
    a stated load >= 200 kg (or tonnes)                 metal +1, polymer -2, wood -1, elastomer -1 (performance)
    the highest stated temperature (C, F or K;          TEMPERATURE_BANDS, on environment:
      "furnace" or "kiln" count as 1000 C)                >= 120 C   polymer -1, wood -1
                                                          >= 200 C   polymer -3, wood -2, elastomer -1,
                                                                     composite -1, ceramic +1, metal +1
                                                          >= 400 C   polymer, wood, elastomer -9 (to 1),
                                                                     composite -4, ceramic +3, metal +1
                                                          >= 1000 C  polymer, wood, elastomer, composite -9,
                                                                     ceramic +5, metal -1

The photo's measured facts nudge further (`emulators.claude_vision`). A class's suitability is its
base plus every nudge, clamped to 1-10; each of its dimension scores is its base plus the nudges on
that dimension. An aggregation request is judged from the specialists' own `suitability` values
in its `<analysis>` blocks (averaged over conditions) where they parse, else like a branch. Scores
pinned by the test (`ClaudeEmulator(scores=...)`, or changed in `emulator.scores`) win exactly.
The neutral part ("Wall bracket for a 20 kg pump, indoors, 500 a year", a mid-grey photo, or
nothing) meets no rule: its scores are the base scores, in the base order.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from emulators.claude_nudges import Dimension, Nudge, clamp_score
from emulators.claude_vision import first_image_facts, image_nudges

DEFAULT_SCORES: Final[Mapping[str, int]] = {
    "metal": 8,
    "polymer": 7,
    "composite": 6,
    "ceramic": 4,
    "elastomer": 3,
    "wood": 2,
}
NEUTRAL_SCORE: Final = 5
IMPLIED_FURNACE_TEMPERATURE_C: Final = 1000.0
HIGH_VOLUME_PER_YEAR: Final = 10_000
MASS_VOLUME_PER_YEAR: Final = 100_000
ONE_OFF_PER_YEAR: Final = 10
HEAVY_LOAD_KG: Final = 200.0
KG_PER_TONNE: Final = 1000.0

# (lowest temperature in C, nudges): the highest band at or below the stated temperature applies
TEMPERATURE_BANDS: Final[tuple[tuple[float, Mapping[str, int]], ...]] = (
    (120.0, {"polymer": -1, "wood": -1}),
    (200.0, {"polymer": -3, "wood": -2, "elastomer": -1, "composite": -1, "ceramic": +1, "metal": +1}),
    # from 400 C polymers, wood and rubber burn or melt: -9 takes them to 1 whatever else the part says
    (400.0, {"polymer": -9, "wood": -9, "elastomer": -9, "composite": -4, "ceramic": +3, "metal": +1}),
    (1000.0, {"polymer": -9, "wood": -9, "elastomer": -9, "composite": -9, "ceramic": +5, "metal": -1}),
)

Effects = tuple[tuple[str, int, Dimension], ...]


@dataclass(frozen=True)
class _WordRule:
    pattern: re.Pattern[str]
    effects: Effects


def _words(pattern: str, *effects: tuple[str, int, Dimension]) -> _WordRule:
    return _WordRule(re.compile(rf"\b(?:{pattern})\b", re.IGNORECASE), effects)


WORD_RULES: Final = (
    _words(
        r"outdoors?|outside|rain|sunlight|uv",
        ("metal", -1, "environment"),
        ("polymer", -1, "environment"),
        ("wood", -2, "environment"),
    ),
    _words(r"wet|humid|damp|condensation", ("metal", -1, "environment"), ("wood", -2, "environment")),
    _words(
        r"salt|marine|sea|seawater|underwater|boats?|coastal",
        ("metal", -2, "environment"),
        ("wood", -2, "environment"),
        ("polymer", +1, "environment"),
        ("composite", +1, "environment"),
    ),
    _words(
        r"gaskets?|seals?|o-rings?|damping|dampers?|grips?|vibrations?|bumpers?|flexible|hoses?|bellows",
        ("elastomer", +3, "performance"),
    ),
    _words(
        r"light-?weight|drones?|racing|aerospace|uavs?|bikes?|bicycles?",
        ("composite", +3, "weight"),
        ("metal", -1, "weight"),
    ),
    _words(
        r"furniture|bench(?:es)?|chairs?|tables?|shel(?:f|ves)|cabinets?",
        ("wood", +6, "performance"),
        ("metal", -1, "cost"),
    ),
    _words(r"impacts?|drops?|dropped|shocks?|hammer(?:s|ed|ing)?", ("ceramic", -2, "performance")),
    _words(r"wear|abrasion|abrasive|cutting|nozzles?", ("ceramic", +2, "performance")),
    _words(
        r"insulat(?:or|ors|ing|ion)|dielectric|high[- ]voltage",
        ("ceramic", +1, "performance"),
        ("polymer", +1, "performance"),
        ("metal", -3, "performance"),
    ),
)

_TEMPERATURE = re.compile(
    r"(-?\d+(?:[.,]\d+)?)\s*(?:°|º|deg(?:rees?)?\s*)?\s*(c|f|k|celsius|fahrenheit|kelvin)\b", re.IGNORECASE
)
_FURNACE = re.compile(r"\b(?:furnaces?|kilns?)\b", re.IGNORECASE)
_PER_YEAR = re.compile(
    r"(\d{1,3}(?:[,\s]\d{3})+|\d+(?:\.\d+)?)\s*(k)?\s*(?:parts?|pieces?|pcs|units?|off)?\s*"
    r"(?:(?:a|per|each|/)\s*(?:year|yr|annum)|annually)\b",
    re.IGNORECASE,
)
_ONE_OFF = re.compile(r"\b(?:one-off|prototype)\b", re.IGNORECASE)
_MASS = re.compile(r"(\d+(?:\.\d+)?)\s*(kg|tonnes?|t)\b", re.IGNORECASE)
_TAGGED = re.compile(r"<(part_context|operating_condition)>(.*?)</\1>", re.DOTALL)
_NOT_THE_PART = re.compile(r"<(specialist_brief|analysis)\b[^>]*>.*?</\1>", re.DOTALL)
_ANALYSIS = re.compile(r"<analysis\b[^>]*\bmaterial=\"(\w+)\"[^>]*>(.*?)</analysis>", re.DOTALL)


def part_description(user_text: str) -> str:
    """The words about the part: its description and operating condition, unescaped."""
    tagged = [text for _, text in _TAGGED.findall(user_text)]
    text = "\n".join(tagged) if tagged else _NOT_THE_PART.sub(" ", user_text)
    return text.replace("&lt;", "<").replace("&gt;", ">")


def _celsius(value: float, unit: str) -> float:
    unit = unit.lower()[0]
    return (value - 32) * 5 / 9 if unit == "f" else value - 273.15 if unit == "k" else value


def _temperature_nudges(text: str) -> list[Nudge]:
    stated = [
        (_celsius(float(m.group(1).replace(",", ".")), m.group(2)), m.group(0)) for m in _TEMPERATURE.finditer(text)
    ]
    stated += [(IMPLIED_FURNACE_TEMPERATURE_C, m.group(0)) for m in _FURNACE.finditer(text)]
    if not stated:
        return []
    celsius, words = max(stated)
    bands = [effects for low, effects in TEMPERATURE_BANDS if celsius >= low]
    if not bands:
        return []
    cause = f'"{words.strip()}" in the description'
    return [Nudge(material, delta, "environment", cause) for material, delta in bands[-1].items()]


def _per_year(text: str) -> tuple[float, str] | None:
    found = _PER_YEAR.search(text)
    if found is not None:
        number = float(re.sub(r"[,\s]", "", found.group(1)))
        return number * (1000 if found.group(2) else 1), found.group(0)
    one_off = _ONE_OFF.search(text)
    return (1.0, one_off.group(0)) if one_off else None


def _quantity_nudges(text: str) -> list[Nudge]:
    quantity = _per_year(text)
    if quantity is None:
        return []
    per_year, words = quantity
    cause = f'"{words.strip()}" in the description'
    if per_year >= HIGH_VOLUME_PER_YEAR:
        boost = 3 if per_year >= MASS_VOLUME_PER_YEAR else 2
        return [Nudge("polymer", boost, "cost", cause), Nudge("metal", -1, "cost", cause)]
    if per_year <= ONE_OFF_PER_YEAR:
        return [Nudge("polymer", -2, "cost", cause)]
    return []


def _load_nudges(text: str) -> list[Nudge]:
    loads = [
        (float(m.group(1)) * (1 if m.group(2).lower() == "kg" else KG_PER_TONNE), m.group(0))
        for m in _MASS.finditer(text)
    ]
    heaviest = max(loads, default=None)
    if heaviest is None or heaviest[0] < HEAVY_LOAD_KG:
        return []
    cause = f'"{heaviest[1]}" in the description'
    effects = (("metal", +1), ("polymer", -2), ("wood", -1), ("elastomer", -1))
    return [Nudge(material, delta, "performance", cause) for material, delta in effects]


def text_nudges(text: str) -> list[Nudge]:
    """Every nudge the description's words give, per the table in the module docstring."""
    nudges: list[Nudge] = []
    for rule in WORD_RULES:
        found = rule.pattern.search(text)
        if found:
            cause = f'"{found.group(0)}" in the description'
            nudges.extend(Nudge(material, delta, dimension, cause) for material, delta, dimension in rule.effects)
    return nudges + _temperature_nudges(text) + _quantity_nudges(text) + _load_nudges(text)


def analysed_scores(user_text: str) -> dict[str, int]:
    """The specialists' suitability per class from `<analysis>` blocks, averaged over conditions."""
    seen: dict[str, list[int]] = {}
    for material, content in _ANALYSIS.findall(user_text):
        try:
            analysis = json.loads(content.strip())
        except json.JSONDecodeError:
            continue
        score = analysis.get("suitability") if isinstance(analysis, dict) else None
        if isinstance(score, int) and not isinstance(score, bool):
            seen.setdefault(material.lower(), []).append(clamp_score(score))
    return {material: math.floor(sum(s) / len(s) + 0.5) for material, s in seen.items()}


@dataclass(frozen=True)
class Assessment:
    """One request's judgement of every class: scores, dimension scores and what caused them."""

    base: Mapping[str, int]
    pinned: frozenset[str]
    nudges: tuple[Nudge, ...]
    analysed: Mapping[str, int]
    facts: tuple[str, ...]  # measured image facts, as cited

    def _moving(self, material: str) -> list[Nudge]:
        if material in self.pinned or material in self.analysed:
            return []
        return [n for n in self.nudges if n.material == material]

    def score(self, material: str) -> int:
        """The class's suitability for this part."""
        if material in self.analysed and material not in self.pinned:
            return self.analysed[material]
        base = self.base.get(material, NEUTRAL_SCORE)
        return clamp_score(base + sum(n.delta for n in self._moving(material)))

    def dimension(self, material: str, dimension: str) -> int:
        """The class's score on one shared dimension."""
        if material in self.analysed and material not in self.pinned:
            return self.analysed[material]
        base = self.base.get(material, NEUTRAL_SCORE)
        return clamp_score(base + sum(n.delta for n in self._moving(material) if n.dimension == dimension))

    def causes(self, material: str) -> list[str]:
        """What moved the class's score, as the answer cites it."""
        return [n.cited() for n in self._moving(material)]

    def scores(self, classes: Iterable[str]) -> dict[str, int]:
        """Scores for `classes`."""
        return {material: self.score(material) for material in classes}


def assess(body: Mapping[str, Any], user_text: str, base: Mapping[str, int], pinned: Iterable[str]) -> Assessment:
    """Judge the part a request describes, from its words and its first photo."""
    facts = first_image_facts(body)
    nudges = text_nudges(part_description(user_text)) + (image_nudges(facts) if facts else [])
    cited = (facts.describe(),) if facts else ()
    return Assessment(dict(base), frozenset(pinned), tuple(nudges), analysed_scores(user_text), cited)
