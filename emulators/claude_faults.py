"""Scripted failures of the Claude emulator, as the real API produces them on the wire.

Fault                  what the client sees
RATE_LIMITED           429 rate_limit_error with retry-after (default 0.05 s)
SPEND_LIMIT            429 rate_limit_error without retry-after, details.error_code
OVERLOADED             529 overloaded_error (retry-after only if `retry_after_s` is given)
SERVER_ERROR           500 api_error (retry-after only if given)
SERVICE_UNAVAILABLE    503 api_error (retry-after only if given)
HANG                   no answer until the client gives up or the emulator stops
TRUNCATED              half an answer, stop_reason "max_tokens"
REFUSAL                stop_reason "refusal"
INVALID_OUTPUT         JSON that breaks the schema
MALFORMED_JSON         prose instead of JSON
OVERLOADED_MIDSTREAM   message_start, then an SSE error event (a plain 529 when not streaming)
DROP_MIDSTREAM         message_start and some deltas, then the connection drops
MALFORMED_CHUNK        mid-stream, an SSE `data:` line that is not JSON (the SDK's stream iterator
                       raises json.JSONDecodeError); not streaming, a 200 whose body is cut-off JSON
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from emulators.claude_requests import ApiError

DEFAULT_RATE_LIMIT_RETRY_AFTER_S: Final = 0.05
MALFORMED_DATA: Final = '{"type": "content_block_delta", "index": 0, "delta": {"type": "text_del'


class Fault(StrEnum):
    """A scripted failure, as the real API produces it."""

    RATE_LIMITED = "rate_limited"
    SPEND_LIMIT = "spend_limit"
    OVERLOADED = "overloaded"
    SERVER_ERROR = "server_error"
    SERVICE_UNAVAILABLE = "service_unavailable"
    HANG = "hang"
    TRUNCATED = "truncated"
    REFUSAL = "refusal"
    INVALID_OUTPUT = "invalid_output"
    MALFORMED_JSON = "malformed_json"
    OVERLOADED_MIDSTREAM = "overloaded_midstream"
    DROP_MIDSTREAM = "drop_midstream"
    MALFORMED_CHUNK = "malformed_chunk"


STATUS_FAULTS: Final[Mapping[Fault, tuple[int, str]]] = {
    Fault.RATE_LIMITED: (
        429,
        "Number of request tokens has exceeded your per-minute rate limit; see the response headers "
        "for current usage. Please reduce the prompt length or try again later.",
    ),
    Fault.SPEND_LIMIT: (
        429,
        "You have reached your specified API usage limits. You will regain access later.",
    ),
    Fault.OVERLOADED: (529, "Overloaded"),
    Fault.SERVER_ERROR: (500, "Internal server error"),
    Fault.SERVICE_UNAVAILABLE: (503, "Service unavailable"),
}


@dataclass
class FaultRule:
    """`fault` for the next `remaining` requests matching `match` (None: every one)."""

    fault: Fault
    match: str | None
    remaining: int | None
    retry_after_s: float | None

    def matches(self, kind: str, material: str | None) -> bool:
        """Whether a request of this kind (and class) matches."""
        return self.match is None or self.match in (kind, material)


def raise_status_fault(rule: FaultRule | None, stream: bool) -> None:
    """Raise the error response of a status fault; do nothing for other faults."""
    if rule is None:
        return
    fault = rule.fault
    if fault is Fault.OVERLOADED_MIDSTREAM and not stream:
        fault = Fault.OVERLOADED  # no stream to break: the overload shows as a plain 529
    if fault not in STATUS_FAULTS:
        return
    status, message = STATUS_FAULTS[fault]
    retry_after_s = rule.retry_after_s
    if fault is Fault.RATE_LIMITED and retry_after_s is None:
        retry_after_s = DEFAULT_RATE_LIMIT_RETRY_AFTER_S
    headers: dict[str, str] = {}
    if retry_after_s is not None and fault is not Fault.SPEND_LIMIT:
        headers["retry-after"] = str(max(1, math.ceil(retry_after_s)))
        headers["retry-after-ms"] = str(round(retry_after_s * 1000))
    details = {"error_code": "enforced_spend_limit_reached"} if fault is Fault.SPEND_LIMIT else None
    raise ApiError(status, message, headers=headers, details=details)
