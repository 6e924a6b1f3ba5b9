"""The answer as the emulated Claude delivers it: thinking, then the answer, within `max_tokens`.

`max_tokens` is a hard limit on thinking plus the answer (Anthropic's Claude 5.x migration guides):
thinking that alone reaches it leaves no answer block at all; thinking plus an answer that exceeds it
cuts the answer off. Either way `stop_reason` is "max_tokens" and `usage.output_tokens` equals
`max_tokens`. The thinking block comes before the answer; its display is "omitted" by default (an
empty `thinking` text and an opaque `signature`), or a one-line summary with display "summarized".
A follow-up ("chat") answer is text that may be followed by a `tool_use` block (stop_reason
"tool_use"); cut at `max_tokens`, it loses the tool call.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Final, Literal

from emulators.claude_answers import ReplyPlan
from emulators.claude_faults import Fault
from emulators.claude_schema import SchemaSynthesizer
from emulators.claude_usage import Tokenizer

SIGNATURE_BYTES: Final = 96
STREAM_CHUNK_CHARS: Final = 64
MAX_STREAM_DELTAS: Final = 12
REFUSAL_TEXT: Final = "I can't help with assessing this part."
PROSE_TEXT: Final = "Metal looks like the best fit for this part, mostly for its strength."
THINKING_SUMMARY: Final = "Weighed the part's load, environment and volume against the class's strengths."


@dataclass(frozen=True)
class Reply:
    """What one response carries: an optional thinking block, an optional answer block, the stop."""

    block_type: Literal["text", "tool_use"]
    text: str  # the delivered text, or the tool input's JSON (cut short when stop_reason is "max_tokens")
    tool_input: Any
    tool_name: str | None
    stop_reason: str
    thinking_tokens: int  # 0: no thinking block
    answer_tokens: int  # 0: no answer block
    thinking_text: str = ""  # "" when display is "omitted"
    tool_after: dict[str, Any] | None = None  # chat: a tool call after the text (tool_name), as its input
    tool_after_json: str = ""

    @property
    def output_tokens(self) -> int:
        """Billed output: thinking plus the answer."""
        return self.thinking_tokens + self.answer_tokens

    @property
    def has_answer(self) -> bool:
        """Whether an answer block follows the thinking (no: thinking used up max_tokens)."""
        return self.answer_tokens > 0


def build_reply(
    plan: ReplyPlan,
    value: Any,
    fault: Fault | None,
    *,
    max_tokens: int,
    thinking_tokens: int,
    tokenizer: Tokenizer,
    summarized: bool = False,
) -> Reply:
    """The answer as delivered, after the fault (if any) and the max_tokens limit on thinking + answer."""
    thinking_text = THINKING_SUMMARY if summarized and thinking_tokens else ""
    if plan.mode == "chat":
        return _chat_reply(plan, value, fault, max_tokens, thinking_tokens, tokenizer, thinking_text)
    block_type: Literal["text", "tool_use"] = "tool_use" if plan.mode == "tool" else "text"
    stop_reason = "tool_use" if plan.mode == "tool" else "end_turn"
    if thinking_tokens >= max_tokens:
        return Reply(block_type, "", {}, plan.tool_name, "max_tokens", max_tokens, 0, thinking_text)
    room = max_tokens - thinking_tokens
    if fault is Fault.INVALID_OUTPUT and plan.schema is not None:
        value = SchemaSynthesizer(plan.schema).broken(value)
    if fault is Fault.REFUSAL:
        block_type, value, stop_reason = "text", REFUSAL_TEXT, "refusal"
    elif fault is Fault.MALFORMED_JSON:
        block_type, value, stop_reason = "text", PROSE_TEXT, "end_turn"
    text = value if isinstance(value, str) and block_type == "text" else json.dumps(value)
    tokens = tokenizer.output_tokens(text)
    if fault is Fault.TRUNCATED or tokens > room:
        limit_chars = tokenizer.chars_for(room)
        cut = min(len(text) // 2, limit_chars) if fault is Fault.TRUNCATED else limit_chars
        cut_text = text[: max(1, cut)]
        return Reply(block_type, cut_text, {}, plan.tool_name, "max_tokens", thinking_tokens, room, thinking_text)
    tool_input = value if block_type == "tool_use" else None
    return Reply(block_type, text, tool_input, plan.tool_name, stop_reason, thinking_tokens, tokens, thinking_text)


def _chat_reply(
    plan: ReplyPlan,
    value: Any,
    fault: Fault | None,
    max_tokens: int,
    thinking_tokens: int,
    tokenizer: Tokenizer,
    thinking_text: str,
) -> Reply:
    """Text, then possibly a tool call (stop_reason "tool_use"); cut at max_tokens like any answer."""
    if thinking_tokens >= max_tokens:
        return Reply("text", "", None, plan.tool_name, "max_tokens", max_tokens, 0, thinking_text)
    room = max_tokens - thinking_tokens
    text = str(value.get("text", "")) if isinstance(value, dict) else str(value)
    tool_input = value.get("tool_input") if isinstance(value, dict) and plan.tool_name else None
    if fault is Fault.REFUSAL:
        return Reply(
            "text",
            REFUSAL_TEXT,
            None,
            None,
            "refusal",
            thinking_tokens,
            tokenizer.output_tokens(REFUSAL_TEXT),
            thinking_text,
        )
    tool_json = json.dumps(tool_input) if isinstance(tool_input, dict) else ""
    tokens = tokenizer.output_tokens(text) + (tokenizer.output_tokens(tool_json) if tool_json else 0)
    if fault is Fault.TRUNCATED or tokens > room:
        limit_chars = tokenizer.chars_for(room)
        cut = min(len(text) // 2, limit_chars) if fault is Fault.TRUNCATED else limit_chars
        return Reply(
            "text", text[: max(1, cut)], None, plan.tool_name, "max_tokens", thinking_tokens, room, thinking_text
        )
    if not tool_json:
        return Reply("text", text, None, plan.tool_name, "end_turn", thinking_tokens, tokens, thinking_text)
    return Reply(
        "text",
        text,
        None,
        plan.tool_name,
        "tool_use",
        thinking_tokens,
        tokens,
        thinking_text,
        tool_after=tool_input,
        tool_after_json=tool_json,
    )


def tool_after_block(reply: Reply, tool_id: str, *, complete: bool) -> dict[str, Any]:
    """The tool_use block that follows a chat answer's text: whole, or as a stream starts it (empty)."""
    tool_input = reply.tool_after if complete and reply.tool_after is not None else {}
    return {"type": "tool_use", "id": tool_id, "name": reply.tool_name, "input": tool_input}


def signature(request_id: str, thinking_tokens: int) -> str:
    """An opaque signature for a thinking block."""
    digest = hashlib.shake_256(f"{request_id}:{thinking_tokens}".encode()).digest(SIGNATURE_BYTES)
    return base64.b64encode(digest).decode()


def thinking_block(reply: Reply, signed: str, *, complete: bool) -> dict[str, Any]:
    """The thinking content block: whole, or as a stream starts it (empty)."""
    if not complete:
        return {"type": "thinking", "thinking": "", "signature": ""}
    return {"type": "thinking", "thinking": reply.thinking_text, "signature": signed}


def answer_block(reply: Reply, tool_id: str, *, complete: bool) -> dict[str, Any]:
    """The answer content block: whole, or as a stream starts it (empty)."""
    if reply.block_type == "tool_use":
        tool_input = reply.tool_input if complete and isinstance(reply.tool_input, dict) else {}
        return {"type": "tool_use", "id": tool_id, "name": reply.tool_name, "input": tool_input}
    return {"type": "text", "text": reply.text if complete else ""}


def answer_delta(reply: Reply, chunk: str) -> dict[str, Any]:
    """One streamed piece of the answer."""
    if reply.block_type == "text":
        return {"type": "text_delta", "text": chunk}
    return {"type": "input_json_delta", "partial_json": chunk}


def chunks(text: str) -> list[str]:
    """The answer split into at most MAX_STREAM_DELTAS deltas."""
    count = max(1, min(MAX_STREAM_DELTAS, math.ceil(len(text) / STREAM_CHUNK_CHARS)))
    size = math.ceil(len(text) / count) or 1
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]
