"""When the emulated Claude answers: time to first byte, then generation time for the output tokens.

Each request has a base latency (`latency_s`, or a per-kind one) and a time to first byte
(`first_token_s`, or `FIRST_TOKEN_SHARE` of the latency). With `output_tokens_per_s` set, the
generation of every output token (thinking and answer) is added on top: a long think makes a slow
answer, as on the real API. Without it (None) the request takes the base latency whatever it
generates, which keeps in-process tests fast. Within the generation window thinking comes first,
in proportion to its share of the output tokens, then the answer's deltas, evenly spaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

FIRST_TOKEN_SHARE: Final = 0.3


@dataclass(frozen=True)
class TimingPlan:
    """Offsets from a request's arrival, in seconds."""

    first_byte_s: float  # message_start (streaming), or when the answer starts (cached prefix readable)
    service_s: float  # the last byte
    thinking_share: float  # of the window between first byte and last byte

    @property
    def thinking_done_s(self) -> float:
        """When the thinking block ends."""
        return self.first_byte_s + (self.service_s - self.first_byte_s) * self.thinking_share

    def answer_delta_s(self, number: int, count: int) -> float:
        """When the `number`-th of `count` answer deltas is sent (1-based)."""
        start = self.thinking_done_s
        return start + (self.service_s - start) * number / count


def plan_timing(
    *,
    latency_s: float,
    first_token_s: float | None,
    thinking_tokens: int,
    output_tokens: int,
    output_tokens_per_s: float | None,
) -> TimingPlan:
    """The request's first byte and last byte, and thinking's share of the time in between."""
    first_s = first_token_s if first_token_s is not None else latency_s * FIRST_TOKEN_SHARE
    generation_s = output_tokens / output_tokens_per_s if output_tokens_per_s else 0.0
    share = thinking_tokens / output_tokens if output_tokens else 0.0
    return TimingPlan(first_s, max(latency_s, first_s) + generation_s, share)
