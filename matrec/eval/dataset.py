"""Labelled cases for evaluation: the JSONL format (documented in datasets/README.md), read and written.

One JSON object per line, so a team can append its own consultations and diff the file. Rows are
checked when the file is read, not when a paid run reaches them: every problem is reported at
once as `file:line: what is wrong`, in a BadInputError.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from matrec.errors import BadInputError
from matrec.materials import CLASS_ORDER, MaterialClass
from matrec.options import MAX_CONTEXT_CHARS

MAX_REPORTED_ERRORS = 20  # beyond this a file is probably not in this format at all
SCALE_0_10: tuple[float, float] = (0.0, 10.0)

_JSON_KINDS: dict[type, str] = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "true/false",
}
_VALID_CLASSES = ", ".join(c.value for c in CLASS_ORDER)


class Case(BaseModel, frozen=True, extra="forbid"):
    """One labelled scenario: what the engine is shown, and what an engineer would accept as best."""

    id: str
    text: str = ""
    image: str | None = None
    expected: list[MaterialClass]
    reference_scores: dict[MaterialClass, float] | None = None
    scale: tuple[float, float] = SCALE_0_10
    origin: str | None = None
    reasoning: str | None = None
    source: str | None = None
    pair: str | None = None

    @field_validator("id")
    @classmethod
    def _id_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("id is blank")
        return value

    @field_validator("expected")
    @classmethod
    def _acceptable_set(cls, value: list[MaterialClass]) -> list[MaterialClass]:
        # Checked here rather than with min_length, so the message can say what to write.
        if not value:
            raise ValueError(f"expected is empty: name at least one acceptable best class ({_VALID_CLASSES})")
        if len(set(value)) != len(value):
            raise ValueError("expected names a class twice")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.text.strip() and not self.image:
            raise ValueError("neither text nor image: give a description, an image path, or both")
        if len(self.text) > MAX_CONTEXT_CHARS:
            raise ValueError(f"text is {len(self.text):,} characters; the engine accepts {MAX_CONTEXT_CHARS:,}")
        low, high = self.scale
        if not low < high:
            raise ValueError(f"scale [{low:g}, {high:g}] must be [min, max] with min < max")
        if self.reference_scores is not None:
            if not self.reference_scores:
                raise ValueError("reference_scores is empty; leave it out instead")
            outside = [f"{c.value}={s:g}" for c, s in self.reference_scores.items() if not low <= s <= high]
            if outside:
                raise ValueError(f"reference scores outside the scale [{low:g}, {high:g}]: {', '.join(outside)}")
        if self.pair == self.id:
            raise ValueError("pair names the case itself")
        return self

    def scores_0_10(self) -> dict[MaterialClass, float] | None:
        """The reference scores mapped linearly from `scale` onto 0-10 (class order), or None."""
        if self.reference_scores is None:
            return None
        low, high = self.scale
        return {
            c: (self.reference_scores[c] - low) / (high - low) * 10.0 for c in CLASS_ORDER if c in self.reference_scores
        }


@dataclass(frozen=True)
class Dataset:
    """The cases of one JSONL file; image paths in them are relative to `path`'s folder."""

    path: Path
    cases: list[Case]

    def image_path(self, case: Case) -> Path | None:
        """Where `case`'s image is on disk, or None for a text-only case."""
        return None if case.image is None else self.path.parent / case.image

    def pairs(self) -> list[tuple[Case, Case]]:
        """Each linked pair of scenarios once, in file order (a one-way link counts too)."""
        by_id = {case.id: case for case in self.cases}
        seen: set[frozenset[str]] = set()
        found: list[tuple[Case, Case]] = []
        for case in self.cases:
            if case.pair is None:
                continue
            key = frozenset((case.id, case.pair))
            if key not in seen:
                seen.add(key)
                found.append((case, by_id[case.pair]))
        return found


def load_dataset(path: Path) -> Dataset:
    """Read and check a JSONL dataset; raises BadInputError listing every bad row as file:line."""
    try:
        content = path.read_text(encoding="utf-8")
    except OSError as error:
        raise BadInputError(f"cannot read {path}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise BadInputError(f"{path}: not UTF-8 text (one JSON object per line expected)") from None
    errors: list[tuple[int, str]] = []  # (line, message); line 0 for the file as a whole
    cases: list[Case] = []
    lines: dict[str, int] = {}
    # split("\n"), not splitlines(): JSON strings may hold U+2028 and other characters splitlines breaks at.
    for number, raw in enumerate(content.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            case = _parse_row(raw)
        except ValueError as error:
            errors.append((number, f"{path}:{number}: {error}"))
            continue
        if case.id in lines:
            errors.append((number, f"{path}:{number}: duplicate id {case.id!r} (first on line {lines[case.id]})"))
            continue
        if case.image is not None and not (path.parent / case.image).is_file():
            where = path.parent / case.image
            errors.append((number, f"{path}:{number}: image {case.image!r} not found (looked for {where})"))
        lines[case.id] = number
        cases.append(case)
    for case in cases:
        if case.pair is not None and case.pair not in lines:
            number = lines[case.id]
            errors.append((number, f"{path}:{number}: pair {case.pair!r} names no case in this file"))
    if not errors and not cases:
        errors.append((0, f"{path}: no cases (one JSON object per line; see datasets/README.md)"))
    if errors:
        shown = [message for _, message in sorted(errors, key=lambda error: error[0])][:MAX_REPORTED_ERRORS]
        if len(errors) > len(shown):
            shown.append(f"... and {len(errors) - len(shown)} more")
        raise BadInputError("\n".join(shown))
    return Dataset(path=path, cases=cases)


def dump_cases(cases: Iterable[Case], path: Path) -> None:
    """Write `cases` as JSONL (defaults left out), replacing `path` in one step; ids must be unique."""
    rows: list[str] = []
    ids: set[str] = set()
    for case in cases:
        if case.id in ids:
            raise ValueError(f"duplicate case id {case.id!r}")
        ids.add(case.id)
        rows.append(json.dumps(case.model_dump(mode="json", exclude_defaults=True), ensure_ascii=False))
    partial = path.with_name(path.name + ".partial")
    partial.write_text("".join(row + "\n" for row in rows), encoding="utf-8")
    os.replace(partial, path)  # a reader never sees half a file


def _parse_row(raw: str) -> Case:
    """One line as a Case; ValueError says what is wrong in the words a dataset author uses."""
    try:
        data: Any = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"invalid JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {_JSON_KINDS.get(type(data), type(data).__name__)}")
    try:
        return Case.model_validate(data)
    except ValidationError as error:
        raise ValueError("; ".join(_describe(detail) for detail in error.errors())) from None


def _describe(detail: ErrorDetails) -> str:
    """A pydantic error as one short phrase naming the field."""
    where = ""
    for part in detail["loc"]:
        if part != "[key]":
            where += f"[{part}]" if isinstance(part, int) else f".{part}" if where else str(part)
    where = where or "row"
    kind = detail["type"]
    if kind == "enum":
        return f"{where}: unknown class {detail['input']!r}; valid classes: {_VALID_CLASSES}"
    if kind == "extra_forbidden":
        return f"unknown field {where!r}; fields are: {', '.join(Case.model_fields)}"
    if kind == "missing":
        return f"missing field {where!r}"
    if kind == "value_error":
        return str(detail.get("ctx", {}).get("error", detail["msg"]))
    return f"{where}: {detail['msg']}"
