"""What the Claude emulator records of each request, for tests and for a benchmark's ideals."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emulators.claude_answers import RequestKind
from emulators.claude_faults import Fault


@dataclass
class RecordedRequest:
    """One request as the emulator saw it, and how it was answered (planned times from arrival)."""

    arrived_at: float
    headers: dict[str, str]
    body: dict[str, Any] = field(default_factory=dict)
    kind: RequestKind = field(default_factory=lambda: RequestKind("generic"))
    stream: bool = False
    request_id: str = ""
    seed: int = 0  # this request's draw from the emulator's random stream
    image_sizes: list[tuple[int, int]] = field(default_factory=list)
    model: str | None = None
    effort: str | None = None  # the effort in force (the model's default if none was sent)
    fault: Fault | None = None
    status: int | None = None  # None: no response was sent (hang, dropped connection)
    answer: Any = None  # the answer object (or text) before any fault was applied
    usage: dict[str, Any] | None = None
    thinking_tokens: int | None = None  # billed thinking (cut at max_tokens)
    output_tokens: int | None = None  # thinking + answer
    stop_reason: str | None = None
    first_byte_s: float | None = None  # planned time to message_start
    service_s: float | None = None  # planned time to the last byte
    started_at: float | None = None  # when it started answering (message_start)
    finished_at: float | None = None

    def timeline_entry(self) -> dict[str, Any]:
        """The request in `/_emulator/stats`: time.monotonic() readings and the planned numbers."""
        return {
            "kind": self.kind.kind,
            "material": self.kind.material,
            "model": self.model,
            "effort": self.effort,
            "arrived_at": self.arrived_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "status": self.status,
            "thinking_tokens": self.thinking_tokens,
            "output_tokens": self.output_tokens,
            "stop_reason": self.stop_reason,
            "first_byte_s": self.first_byte_s,
            "service_s": self.service_s,
        }
