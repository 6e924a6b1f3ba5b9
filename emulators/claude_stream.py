"""The SSE events of one streamed answer, paced by its timing plan, as the Messages API sends them.

    message_start                                     at the first byte
    error                                             OVERLOADED_MIDSTREAM: the stream ends here
    content_block_start 0 (thinking, empty), ping,    if it thought; a thinking_delta only with
      [thinking_delta], signature_delta, stop 0         display "summarized"; the signature when
                                                        thinking is done
    content_block_start i (text or tool_use, empty),  if an answer is left within max_tokens; deltas
      [ping], content_block_delta..., stop i            evenly spaced up to the last byte
    content_block_start i+1 (tool_use, empty),        a chat answer's tool call after its text:
      input_json_delta..., stop i+1                     its input streamed as partial JSON
    message_delta (stop_reason, usage), message_stop

DROP_MIDSTREAM and MALFORMED_CHUNK break the stream after half the answer's deltas, or right after
the thinking block when thinking left no answer; the caller then drops the connection or writes a
`data:` line that is not JSON.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from emulators.claude_reply import Reply, answer_block, answer_delta, chunks, thinking_block, tool_after_block
from emulators.claude_timing import TimingPlan

Send = Callable[[str, Mapping[str, Any]], Awaitable[None]]
Pace = Callable[[float], Awaitable[None]]  # wait until this many seconds after the request arrived
StreamEnd = Literal["complete", "overloaded", "broken"]


@dataclass(frozen=True)
class StreamPlan:
    """Everything one stream sends."""

    reply: Reply
    timing: TimingPlan
    start_message: Mapping[str, Any]  # the message with no content and no stop reason yet
    end_delta: Mapping[str, Any]  # stop_reason, stop_sequence, stop_details
    end_usage: Mapping[str, Any]
    signature: str
    tool_id: str
    overloaded: bool  # an error event right after message_start
    breaks: bool  # cut midway (the caller finishes the break)


async def _block(send: Send, kind: str, index: int, **fields: Any) -> None:
    await send(kind, {"type": kind, "index": index, **fields})


async def _thinking(plan: StreamPlan, send: Send, pace: Pace) -> None:
    reply = plan.reply
    await _block(send, "content_block_start", 0, content_block=thinking_block(reply, "", complete=False))
    await send("ping", {"type": "ping"})
    if reply.thinking_text:
        await _block(send, "content_block_delta", 0, delta={"type": "thinking_delta", "thinking": reply.thinking_text})
    await pace(plan.timing.thinking_done_s)
    await _block(send, "content_block_delta", 0, delta={"type": "signature_delta", "signature": plan.signature})
    await _block(send, "content_block_stop", 0)


async def _answer(plan: StreamPlan, index: int, send: Send, pace: Pace) -> StreamEnd | None:
    reply = plan.reply
    await _block(send, "content_block_start", index, content_block=answer_block(reply, plan.tool_id, complete=False))
    if index == 0:
        await send("ping", {"type": "ping"})
    parts = chunks(reply.text)
    for number, chunk in enumerate(parts, start=1):
        await pace(plan.timing.answer_delta_s(number, len(parts)))
        if plan.breaks and number > max(1, len(parts) // 2):
            return "broken"
        await _block(send, "content_block_delta", index, delta=answer_delta(reply, chunk))
    if plan.breaks:
        return "broken"
    await _block(send, "content_block_stop", index)
    if reply.tool_after is not None:
        await _block(
            send, "content_block_start", index + 1, content_block=tool_after_block(reply, plan.tool_id, complete=False)
        )
        for chunk in chunks(reply.tool_after_json):
            await _block(
                send, "content_block_delta", index + 1, delta={"type": "input_json_delta", "partial_json": chunk}
            )
        await _block(send, "content_block_stop", index + 1)
    return None


async def stream_events(plan: StreamPlan, send: Send, pace: Pace) -> StreamEnd:
    """Send the stream's events from message_start on; says how the stream ended."""
    await send("message_start", {"type": "message_start", "message": plan.start_message})
    if plan.overloaded:
        return "overloaded"
    if plan.reply.thinking_tokens:
        await _thinking(plan, send, pace)
    if plan.reply.has_answer:
        ended = await _answer(plan, 1 if plan.reply.thinking_tokens else 0, send, pace)
        if ended is not None:
            return ended
    elif plan.breaks:
        return "broken"
    await send("message_delta", {"type": "message_delta", "delta": plan.end_delta, "usage": plan.end_usage})
    await send("message_stop", {"type": "message_stop"})
    return "complete"
