"""The Claude emulator's record of each request, as a benchmark reads it: plan, times, usage, part tag.

Times are time.monotonic() readings, comparable across processes on one Linux machine, so a
benchmark can set them against its own clock. `first_byte_s` and `service_s` are the emulator's
plan for the request (offsets from its arrival), which is what ideals are computed from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from emulators.claude import RecordedRequest
from emulators.claude_answers import user_text

PART_TAG: Final = re.compile(r"\(part-ref ([\w-]+)\)")  # put in a part's context to find its calls


def tag_text(tag: str) -> str:
    """The text to add to a part's context so its calls can be told apart: '(part-ref design-7)'."""
    return f"(part-ref {tag})"


@dataclass(frozen=True)
class Usage:
    """Tokens one response reported, as the API's `usage` object gives them."""

    input_tokens: int
    output_tokens: int
    cache_write_5m_tokens: int
    cache_write_1h_tokens: int
    cache_read_tokens: int

    @classmethod
    def of(cls, usage: dict[str, Any]) -> Usage:
        """From the API's usage object (`cache_creation` splits writes by TTL)."""
        split = usage.get("cache_creation") or {}
        written = int(usage.get("cache_creation_input_tokens") or 0)
        one_hour = int(split.get("ephemeral_1h_input_tokens") or 0)
        return cls(
            input_tokens=int(usage.get("input_tokens") or 0),
            output_tokens=int(usage.get("output_tokens") or 0),
            cache_write_5m_tokens=written - one_hour,
            cache_write_1h_tokens=one_hour,
            cache_read_tokens=int(usage.get("cache_read_input_tokens") or 0),
        )


@dataclass(frozen=True)
class Call:
    """One request to the emulated Claude."""

    kind: str  # branch, aggregate, single, generic
    material: str | None
    arrived_at: float
    started_at: float | None
    finished_at: float | None
    status: int | None  # None: no response was sent (hang, dropped connection)
    stop_reason: str | None
    thinking_tokens: int | None
    output_tokens: int | None
    first_byte_s: float | None  # planned
    service_s: float | None  # planned
    usage: Usage | None
    tag: str | None  # the part's tag found in the prompt, if any

    @classmethod
    def of(cls, entry: dict[str, Any]) -> Call:
        """From a timeline entry with `usage` and `tag` added (what bench.claude_process serves)."""
        usage = entry.get("usage")
        return cls(
            kind=str(entry["kind"]),
            material=entry["material"],
            arrived_at=float(entry["arrived_at"]),
            started_at=entry["started_at"],
            finished_at=entry["finished_at"],
            status=entry["status"],
            stop_reason=entry["stop_reason"],
            thinking_tokens=entry["thinking_tokens"],
            output_tokens=entry["output_tokens"],
            first_byte_s=entry["first_byte_s"],
            service_s=entry["service_s"],
            usage=Usage.of(usage) if usage else None,
            tag=entry.get("tag"),
        )

    @classmethod
    def of_record(cls, record: RecordedRequest) -> Call:
        """From an in-process emulator's record."""
        return cls.of(entry(record))


def entry(record: RecordedRequest) -> dict[str, Any]:
    """A record's timeline entry, with the usage it reported and its part tag."""
    found = PART_TAG.search(user_text(record.body)) if record.body else None
    return {**record.timeline_entry(), "usage": record.usage, "tag": found.group(1) if found else None}


def branch_calls(calls: list[Call]) -> list[Call]:
    """The branch requests, in arrival order."""
    return sorted((c for c in calls if c.kind == "branch"), key=lambda c: c.arrived_at)


def planned_ideal_s(calls: list[Call], *, primed: bool) -> float:
    """The least wall time the emulator's plan allows one consultation (branches, then aggregation).

    Each class's attempts run back to back (their planned service times add up). With `primed`,
    the first branch to arrive is the primer and the others start at its planned first byte:
    max(primer, primer's first byte + slowest other) + aggregation. Without it: slowest + aggregation.
    """
    branches = branch_calls(calls)
    per_class: dict[str | None, float] = {}
    for call in branches:
        per_class[call.material] = per_class.get(call.material, 0.0) + (call.service_s or 0.0)
    aggregation_s = sum(c.service_s or 0.0 for c in calls if c.kind == "aggregate")
    if not primed:
        return max(per_class.values()) + aggregation_s
    primer = branches[0]
    others = [s for m, s in per_class.items() if m != primer.material]
    release_s = primer.first_byte_s or 0.0
    return max(per_class[primer.material], release_s + max(others, default=0.0)) + aggregation_s
