"""JSON-schema answers for the Claude emulator: a value that fits a schema, or one that breaks it.

Schemas arrive as the SDK sends them (`anthropic.transform_schema`): `$defs`/`$ref`, `anyOf` with
null, `enum`, objects with `required` and `additionalProperties: false`, and numeric or length
bounds moved into the description as text such as `{maximum: 10, minimum: 1}`. Plain JSON-schema
keywords (`minimum`, `maxItems`, ...) are honoured too.

A `FieldScript` can choose values by field name (the emulator's scripted semantics); whatever it
returns is used only if `SchemaSynthesizer.accepts` it, so a scripted answer always validates.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Final, Protocol

Schema = Mapping[str, Any]
Context = Mapping[str, str]


class _Unscripted:
    def __repr__(self) -> str:
        return "UNSCRIPTED"


UNSCRIPTED: Final = _Unscripted()
"""Returned by a `FieldScript` to let the generic synthesis choose."""

DEFAULT_ARRAY_LENGTH: Final = 2
OUT_OF_BOUNDS_BY: Final = 4

_BOUND_KEYS: Final = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
)
_DESCRIBED_BOUNDS = re.compile(r"\{([^{}]*)\}\s*$")
_FORMAT_EXAMPLES: Final = {
    "date-time": "2026-01-01T00:00:00Z",
    "date": "2026-01-01",
    "time": "12:00:00",
    "duration": "P1D",
    "email": "engineer@example.com",
    "hostname": "example.com",
    "uri": "https://example.com/",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


class FieldScript(Protocol):
    """Chooses values by field name; returning `UNSCRIPTED` defers to the generic synthesis."""

    def value(self, name: str, schema: Schema, ctx: Context) -> Any:
        """The value for field `name`, or `UNSCRIPTED`."""

    def item_contexts(self, name: str, item_schema: Schema, ctx: Context) -> list[dict[str, str]] | None:
        """One context per item of array `name`, or None for the default length."""


def bounds(schema: Schema) -> dict[str, float]:
    """Numeric and length bounds, from JSON-schema keywords or the SDK's description text."""
    found: dict[str, float] = {}
    match = _DESCRIBED_BOUNDS.search(str(schema.get("description", "")))
    if match:
        for pair in match.group(1).split(","):
            key, _, raw = pair.partition(":")
            try:
                found[key.strip()] = float(raw.strip())
            except ValueError:
                continue
    for key in _BOUND_KEYS:
        value = schema.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            found[key] = float(value)
    return {key: value for key, value in found.items() if key in _BOUND_KEYS}


def _types(schema: Schema) -> list[str]:
    declared = schema.get("type")
    if isinstance(declared, list):
        return [str(t) for t in declared]
    return [str(declared)] if isinstance(declared, str) else []


def _integer_range(limits: Mapping[str, float]) -> tuple[float, float]:
    low = limits.get("minimum", -math.inf)
    if "exclusiveMinimum" in limits:
        low = max(low, math.floor(limits["exclusiveMinimum"]) + 1)
    high = limits.get("maximum", math.inf)
    if "exclusiveMaximum" in limits:
        high = min(high, math.ceil(limits["exclusiveMaximum"]) - 1)
    return low, high


class SchemaSynthesizer:
    """Builds and checks values for one root schema (with its `$defs`)."""

    def __init__(self, root: Schema, script: FieldScript | None = None) -> None:
        self._root = root
        self._script = script

    def synthesize(self, ctx: Context | None = None) -> Any:
        """A value that validates against the root schema."""
        return self._node(self._root, "", ctx or {})

    def resolve(self, schema: Schema) -> Schema:
        """Follow `$ref`s (local JSON pointers such as `#/$defs/Name`)."""
        seen = 0
        while isinstance(schema.get("$ref"), str) and seen < 32:
            target: Any = self._root
            for part in str(schema["$ref"]).removeprefix("#").strip("/").split("/"):
                if part:
                    target = target[part.replace("~1", "/").replace("~0", "~")]
            schema = target
            seen += 1
        return schema

    def accepts(self, value: Any, schema: Schema | None = None) -> bool:
        """Whether `value` validates against `schema` (default: the root)."""
        schema = self.resolve(self._root if schema is None else schema)
        if "const" in schema:
            return bool(value == schema["const"])
        if "enum" in schema:
            return value in schema["enum"]
        if "anyOf" in schema:
            return any(self.accepts(value, variant) for variant in schema["anyOf"])
        if "allOf" in schema:
            return all(self.accepts(value, part) for part in schema["allOf"])
        types = _types(schema)
        if not types:
            return True
        return any(self._accepts_type(value, kind, schema) for kind in types)

    def _accepts_type(self, value: Any, kind: str, schema: Schema) -> bool:
        limits = bounds(schema)
        if kind == "null":
            return value is None
        if kind == "boolean":
            return isinstance(value, bool)
        if kind in ("integer", "number"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                return False
            if kind == "integer" and not float(value).is_integer():
                return False
            low, high = _integer_range(limits)
            return low <= value <= high
        if kind == "string":
            return isinstance(value, str) and (
                limits.get("minLength", 0) <= len(value) <= limits.get("maxLength", math.inf)
            )
        if kind == "array":
            if not isinstance(value, list):
                return False
            if not limits.get("minItems", 0) <= len(value) <= limits.get("maxItems", math.inf):
                return False
            items = schema.get("items")
            return items is None or all(self.accepts(item, items) for item in value)
        if kind == "object":
            return self._accepts_object(value, schema)
        return False

    def _accepts_object(self, value: Any, schema: Schema) -> bool:
        if not isinstance(value, dict):
            return False
        properties: Mapping[str, Any] = schema.get("properties", {})
        if any(key not in value for key in schema.get("required", [])):
            return False
        if schema.get("additionalProperties") is False and any(key not in properties for key in value):
            return False
        return all(self.accepts(item, properties[key]) for key, item in value.items() if key in properties)

    def _node(self, schema: Schema, name: str, ctx: Context) -> Any:
        schema = self.resolve(schema)
        if self._script is not None:
            scripted = self._script.value(name, schema, ctx)
            if scripted is not UNSCRIPTED and self.accepts(scripted, schema):
                return scripted
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return schema["enum"][0]
        if "anyOf" in schema or "allOf" in schema:
            variants: list[Schema] = list(schema.get("anyOf") or schema.get("allOf") or [])
            concrete = [v for v in variants if _types(self.resolve(v)) != ["null"]] or variants
            return self._node(concrete[0], name, ctx)
        types = [t for t in _types(schema) if t != "null"] or _types(schema) or ["object"]
        return self._typed(types[0], schema, name, ctx)

    def _typed(self, kind: str, schema: Schema, name: str, ctx: Context) -> Any:
        if kind == "object":
            properties: Mapping[str, Schema] = schema.get("properties", {})
            return {key: self._node(prop, key, ctx) for key, prop in properties.items()}
        if kind == "array":
            return self._array(schema, name, ctx)
        if kind in ("integer", "number"):
            return self._number(kind, bounds(schema))
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return self._string(schema, name)

    def _array(self, schema: Schema, name: str, ctx: Context) -> list[Any]:
        limits = bounds(schema)
        low = int(limits.get("minItems", 0))
        high = int(limits.get("maxItems", 10**6))
        item_schema: Schema = self.resolve(schema.get("items", {}))
        contexts = None if self._script is None else self._script.item_contexts(name, item_schema, ctx)
        if contexts is None:
            contexts = [dict(ctx)] * max(low, min(DEFAULT_ARRAY_LENGTH, high))
        contexts = contexts[:high]
        while len(contexts) < low:
            contexts.append(contexts[-1] if contexts else dict(ctx))
        return [self._node(item_schema, name, {**ctx, **item}) for item in contexts]

    @staticmethod
    def _number(kind: str, limits: Mapping[str, float]) -> int | float:
        low, high = _integer_range(limits)
        if math.isfinite(low) and math.isfinite(high):
            middle = (low + high) / 2
        elif math.isfinite(low):
            middle = low
        elif math.isfinite(high):
            middle = min(high, 0.0)
        else:
            middle = 1.0
        return math.floor(middle) if kind == "integer" else middle

    @staticmethod
    def _string(schema: Schema, name: str) -> str:
        example = _FORMAT_EXAMPLES.get(str(schema.get("format", "")))
        if example is not None:
            return example
        limits = bounds(schema)
        text = f"emulated {name.replace('_', ' ')}".strip() if name else "emulated text"
        text = text.ljust(int(limits.get("minLength", 0)), ".")
        return text[: int(limits.get("maxLength", len(text)))]

    def broken(self, value: Any) -> Any:
        """`value` made invalid: a bounded number pushed out of range, else a required field dropped."""
        schema = self.resolve(self._root)
        if not isinstance(value, dict) or _types(schema) != ["object"]:
            return {"unexpected": value}
        pushed = self._push_out_of_bounds(value, schema)
        if pushed is not None:
            return pushed
        required = [key for key in schema.get("required", []) if key in value]
        return {key: item for key, item in value.items() if key != required[0]} if required else None

    def _push_out_of_bounds(self, value: dict[str, Any], schema: Schema) -> dict[str, Any] | None:
        properties: Mapping[str, Schema] = schema.get("properties", {})
        for key, raw in properties.items():
            prop = self.resolve(raw)
            limits = bounds(prop)
            if set(_types(prop)) & {"integer", "number"} and "maximum" in limits:
                return {**value, key: int(limits["maximum"]) + OUT_OF_BOUNDS_BY}
        for key, raw in properties.items():
            prop = self.resolve(raw)
            if isinstance(value.get(key), dict) and _types(prop) == ["object"]:
                inner = self._push_out_of_bounds(value[key], prop)
                if inner is not None:
                    return {**value, key: inner}
        return None
