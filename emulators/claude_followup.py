"""What the emulated Claude answers to a follow-up question on a consultation, from the request alone.

A follow-up request carries `<task>follow_up</task>` and the question in `<question>...</question>`
(the last one in the user turns is the one to answer), after the consultation text, whose
`<recommendation best=".." runner_up="..">` and `<analysis material="..">` blocks give the facts:

    off-topic     no material, part, property, process or requirement word and no class name:
                  one polite sentence that only material selection for this part is answered
    language      German, French or Spanish when at least two of the question's words are stop
                  words of that language and more than of English: the answer is in it
    subject       the first property the question names (temperature, cost, weight, strength,
                  grades, processes, corrosion) is cited for the class it names (else the best
                  class) from that class's analysis, with the best class and its calibrated score
    changes       a temperature ("250 °C"), a quantity per period ("10,000 a year"), an environment
                  (food contact, outdoors, salt water, chemicals) or a load ("20 kg", "5 kN") in the
                  question becomes a requirement string; the answer says the recommendation may
                  change, and the emulator calls the request's `propose_rerun` tool with them

An answer is a dict: `text`, and `tool_input` (None when no tool call is made).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

QUESTION: Final = re.compile(r"<question>\s*(.*?)\s*</question>", re.DOTALL)
RERUN_TOOL: Final = "propose_rerun"
_RECOMMENDATION: Final = re.compile(r'<recommendation best="(\w+)" runner_up="(\w+)"')
_SCORES: Final = re.compile(r"Calibrated scores: (.*)")
_ANALYSIS: Final = re.compile(r'<analysis material="(\w+)"[^>]*status="assessed">\n(.*?)\n</analysis>', re.DOTALL)
_WORD: Final = re.compile(r"[\wÀ-ÿ'-]+")

STOP_WORDS: Final[Mapping[str, frozenset[str]]] = {
    "en": frozenset(
        [
            "the",
            "is",
            "and",
            "what",
            "for",
            "with",
            "how",
            "why",
            "would",
            "about",
            "it",
            "of",
            "to",
            "in",
            "at",
            "this",
            "that",
            "we",
            "can",
            "does",
            "our",
        ]
    ),
    "de": frozenset(
        [
            "der",
            "die",
            "das",
            "und",
            "ist",
            "nicht",
            "wie",
            "was",
            "warum",
            "bei",
            "mit",
            "für",
            "ein",
            "eine",
            "auch",
            "oder",
            "wenn",
            "wir",
            "welche",
            "würde",
            "dem",
            "den",
            "zu",
            "ich",
            "noch",
            "wäre",
            "besser",
            "aus",
        ]
    ),
    "fr": frozenset(
        [
            "le",
            "les",
            "et",
            "est",
            "pas",
            "pour",
            "avec",
            "une",
            "des",
            "du",
            "quoi",
            "pourquoi",
            "nous",
            "quel",
            "quelle",
            "ce",
            "il",
            "sur",
            "au",
            "aux",
            "serait",
            "plus",
            "mieux",
            "dans",
        ]
    ),
    "es": frozenset(
        [
            "el",
            "los",
            "las",
            "y",
            "es",
            "para",
            "con",
            "una",
            "por",
            "qué",
            "cómo",
            "del",
            "pero",
            "esto",
            "este",
            "lo",
            "al",
            "cuál",
            "sería",
            "mejor",
            "más",
            "puede",
        ]
    ),
}
MIN_STOP_WORDS: Final = 2

CLASS_WORDS: Final[Mapping[str, tuple[str, ...]]] = {
    "metal": ("metal", "métal", "steel", "stahl", "acier", "acero", "alumin", "stainless", "edelstahl", "brass"),
    "polymer": ("polymer", "plastic", "kunststoff", "plastique", "plástico", "polímero", "nylon", "abs", "peek"),
    "ceramic": ("ceramic", "keramik", "céramique", "cerámica", "alumina", "glass"),
    "composite": ("composite", "carbon fib", "cfrp", "gfrp", "cfk", "gfk", "verbund", "compuesto", "fibre", "fiber"),
    "elastomer": ("elastomer", "rubber", "gummi", "caoutchouc", "goma", "caucho", "silicone", "silikon"),
    "wood": ("wood", "holz", "bois", "madera", "timber", "plywood"),
}
# subject -> (its stems in four languages, the analysis facts it cites)
SUBJECTS: Final[Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "temperature": (
        ("temperat", "heat", "hot", "°", "degree", "hitze", "warm", "chaleur", "chaud", "calor", "caliente"),
        ("max service temperature",),
    ),
    "cost": (
        (
            "cost",
            "price",
            "cheap",
            "expensive",
            "budget",
            "kosten",
            "preis",
            "billig",
            "teuer",
            "coût",
            "prix",
            "cher",
            "costo",
            "coste",
            "precio",
            "barato",
            "caro",
        ),
        ("relative cost",),
    ),
    "weight": (
        (
            "weight",
            "light",
            "heavy",
            "densit",
            "gewicht",
            "leicht",
            "schwer",
            "dichte",
            "poids",
            "léger",
            "lourd",
            "peso",
            "ligero",
            "pesado",
        ),
        ("density",),
    ),
    "strength": (
        (
            "strength",
            "strong",
            "load",
            "stiff",
            "festigkeit",
            "steif",
            "last",
            "résistan",
            "rigid",
            "charge",
            "resistencia",
            "carga",
            "fuerte",
        ),
        ("strength", "Young's modulus"),
    ),
    "grades": (("grade", "alloy", "legierung", "sorte", "nuance", "alliage", "grado", "aleación"), ("Grades",)),
    "processes": (
        (
            "process",
            "manufactur",
            "machin",
            "mould",
            "mold",
            "print",
            "cast",
            "fertig",
            "herstell",
            "fabric",
            "usinage",
            "moulage",
            "fabricación",
            "mecaniz",
        ),
        ("Processes",),
    ),
    "corrosion": (("corros", "rust", "rost", "rouille", "óxido", "oxid"), ("Concerns",)),
}
TOPIC_WORDS: Final = (
    "material",
    "matériau",
    "werkstoff",
    "part",
    "teil",
    "pièce",
    "pieza",
    "recommend",
    "empfehl",
    "recommand",
    "recomend",
    "why",
    "warum",
    "pourquoi",
    "por qué",
    "alternativ",
    "instead",
    "stattdessen",
    "plutôt",
    "option",
    "better",
    "besser",
    "mieux",
    "mejor",
    "suitab",
    "geeignet",
    "adapté",
    "adecuad",
    "bracket",
    "halter",
    "design",
    "tolerance",
    "finish",
    "coating",
    "beschicht",
    "revêtement",
    "recubrimiento",
    "weld",
    "schweiß",
    "soud",
    "sold",
    "fatigue",
    "wear",
    "verschleiß",
    "usure",
    "desgaste",
    "re-run",
    "rerun",
)

TEMPERATURE: Final = re.compile(
    r"(-?\d{1,4}(?:[.,]\d+)?)\s*(?:°\s*([CF])\b|(?:degrees?|grad|degrés?|grados?)\s*(celsius|fahrenheit|[CF])?\b)",
    re.IGNORECASE,
)
QUANTITY: Final = re.compile(
    r"(\d{1,3}(?:[,.' ]\d{3})+|\d+(?:[.,]\d+)?\s*k\b|\d+)\s*(thousand|tausend|mille|mil)?\s*"
    r"(?:parts?|pieces?|pcs|units?|stück|teile|pièces|piezas|unidades)?\s*"
    r"(?:(?:a|per|each|pro|im|par|por|al)\s+|/\s*)(year|yr|annum|month|week|jahr|monat|woche|an|année|mois|año|mes)\b",
    re.IGNORECASE,
)
LOAD: Final = re.compile(r"(\d+(?:[.,]\d+)?)\s*(kg|kn|n|lbs?|t)\b", re.IGNORECASE)
_PERIODS: Final[Mapping[str, str]] = {
    "year": "year",
    "yr": "year",
    "annum": "year",
    "jahr": "year",
    "an": "year",
    "année": "year",
    "año": "year",
    "month": "month",
    "monat": "month",
    "mois": "month",
    "mes": "month",
    "week": "week",
    "woche": "week",
}
ENVIRONMENTS: Final[Sequence[tuple[str, tuple[str, ...]]]] = (
    ("food contact", ("food", "lebensmittel", "alimentaire", "aliment", "alimentos")),
    (
        "used outdoors (UV and weather)",
        (
            "outdoor",
            "outside",
            "uv",
            "sunlight",
            "im freien",
            "draußen",
            "außen",
            "extérieur",
            "exterior",
            "aire libre",
        ),
    ),
    (
        "exposed to salt water",
        (
            "salt water",
            "saltwater",
            "seawater",
            "sea water",
            "marine",
            "salt spray",
            "salzwasser",
            "meerwasser",
            "eau salée",
            "eau de mer",
            "agua salada",
            "agua de mar",
        ),
    ),
    (
        "exposed to chemicals",
        (
            "chemical",
            "acid",
            "solvent",
            "chemikalie",
            "säure",
            "lösungsmittel",
            "chimique",
            "acide",
            "solvant",
            "químic",
            "ácido",
            "disolvente",
        ),
    ),
)

_TEXTS: Final[Mapping[str, Mapping[str, str]]] = {
    "en": {
        "redirect": "I can only help with material selection for this part. Ask me about its materials, grades, "
        "processes or requirements.",
        "fact": "For {material}, the consultation lists {facts}.",
        "best": "The consultation recommends {best} ({best_score}), ahead of {runner_up} ({runner_score}).",
        "change": "That changes the requirements ({changes}), so the recommendation may change: "
        "I suggest re-running the analysis with them.",
    },
    "de": {
        "redirect": "Ich kann nur bei der Werkstoffwahl für dieses Teil helfen. Fragen Sie nach Werkstoffen, "
        "Sorten, Verfahren oder Anforderungen.",
        "fact": "Für {material} nennt die Beratung {facts}.",
        "best": "Die Beratung empfiehlt {best} ({best_score}) vor {runner_up} ({runner_score}).",
        "change": "Damit ändern sich die Anforderungen ({changes}), und die Empfehlung kann sich ändern: "
        "ich schlage vor, die Analyse damit neu laufen zu lassen.",
    },
    "fr": {
        "redirect": "Je ne peux aider qu'au choix du matériau de cette pièce. Posez une question sur ses "
        "matériaux, nuances, procédés ou exigences.",
        "fact": "Pour {material}, la consultation indique {facts}.",
        "best": "La consultation recommande {best} ({best_score}), devant {runner_up} ({runner_score}).",
        "change": "Cela change les exigences ({changes}), la recommandation peut donc changer : "
        "je propose de relancer l'analyse avec elles.",
    },
    "es": {
        "redirect": "Solo puedo ayudar con la selección de material para esta pieza. Pregunte por sus "
        "materiales, grados, procesos o requisitos.",
        "fact": "Para {material}, la consulta indica {facts}.",
        "best": "La consulta recomienda {best} ({best_score}), por delante de {runner_up} ({runner_score}).",
        "change": "Eso cambia los requisitos ({changes}), así que la recomendación puede cambiar: "
        "propongo repetir el análisis con ellos.",
    },
}


def question_of(text: str) -> str:
    """The question to answer: the last `<question>` in the user turns."""
    found = QUESTION.findall(text)
    return found[-1] if found else ""


def language(question: str) -> str:
    """ "en", "de", "fr" or "es", by stop words (English unless another language clearly wins)."""
    words = [w.lower() for w in _WORD.findall(question)]
    counts = {lang: sum(1 for w in words if w in stops) for lang, stops in STOP_WORDS.items()}
    best = max(("de", "fr", "es"), key=lambda lang: counts[lang])
    return best if counts[best] >= MIN_STOP_WORDS and counts[best] > counts["en"] else "en"


def _has(text: str, stems: Sequence[str]) -> bool:
    return any(re.search(rf"(?<![\w]){re.escape(stem)}", text) for stem in stems)


def requirement_changes(question: str) -> list[str]:
    """The requirement changes the question carries, as short requirement strings."""
    lowered = question.lower()
    changes: list[str] = []
    for match in TEMPERATURE.finditer(question):
        unit = (match.group(2) or match.group(3) or "C")[0].upper()
        changes.append(f"operates at {match.group(1)} °{unit}")
    for match in QUANTITY.finditer(question):
        number = match.group(1).strip() + (f" {match.group(2)}" if match.group(2) else "")
        changes.append(f"{number} parts per {_PERIODS.get(match.group(3).lower(), 'year')}")
    for requirement, words in ENVIRONMENTS:
        if _has(lowered, words):
            changes.append(requirement)
    for match in LOAD.finditer(question):
        changes.append(f"carries {match.group(1)} {match.group(2)}")
    return list(dict.fromkeys(changes))


def _classes_named(lowered: str) -> list[str]:
    return [m for m, words in CLASS_WORDS.items() if _has(lowered, words)]


def _subject(lowered: str) -> str | None:
    return next((name for name, (stems, _) in SUBJECTS.items() if _has(lowered, stems)), None)


def _analyses(text: str) -> dict[str, dict[str, str]]:
    """Per assessed class, its analysis lines by label, and each key property by name."""
    found: dict[str, dict[str, str]] = {}
    for material, body in _ANALYSIS.findall(text):
        facts: dict[str, str] = {}
        for line in body.splitlines():
            label, _, value = line.partition(": ")
            facts[label] = value
        for item in facts.get("Key properties", "").split(" | "):
            for name in ("density", "Young's modulus", "strength", "max service temperature", "relative cost"):
                if item.startswith(name + " "):
                    facts[name] = item.removeprefix(name + " ")
        found.setdefault(material, facts)
    return found


def _scores(text: str) -> dict[str, str]:
    match = _SCORES.search(text)
    pairs = (part.strip().split(" ", 1) for part in match.group(1).split(",")) if match else iter(())
    return {pair[0]: pair[1] for pair in pairs if len(pair) == 2}


def followup_answer(request_text: str, tool_names: Sequence[str]) -> dict[str, Any]:
    """The answer to the request's last question: its text, and the propose_rerun input if called."""
    question = question_of(request_text)
    lowered = question.lower()
    texts = _TEXTS[language(question)]
    changes = requirement_changes(question)
    named = _classes_named(lowered)
    subject = _subject(lowered)
    if not changes and not named and subject is None and not _has(lowered, TOPIC_WORDS):
        return {"text": texts["redirect"], "tool_input": None}
    recommendation = _RECOMMENDATION.search(request_text)
    best, runner_up = recommendation.groups() if recommendation else ("metal", "polymer")
    scores = _scores(request_text)
    analyses = _analyses(request_text)
    focus = next((m for m in named if m in analyses), best)
    sentences = []
    facts = analyses.get(focus, {})
    wanted = SUBJECTS[subject][1] if subject else ("strength", "max service temperature")
    cited = [f"{name} {facts[name]}" for name in wanted if facts.get(name)]
    if cited:
        sentences.append(texts["fact"].format(material=focus, facts="; ".join(cited)))
    sentences.append(
        texts["best"].format(
            best=best,
            best_score=scores.get(best, "?"),
            runner_up=runner_up,
            runner_score=scores.get(runner_up, "?"),
        )
    )
    calls = RERUN_TOOL in tool_names and bool(changes)
    if changes:
        sentences.append(texts["change"].format(changes="; ".join(changes)))
    return {"text": " ".join(sentences), "tool_input": {"changes": changes} if calls else None}
