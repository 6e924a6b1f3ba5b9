"""A loopback emulator of the Anthropic Messages API, for driving the real `anthropic` SDK in tests.

    async with ClaudeEmulator(latency_s=0.2) as claude:
        client = anthropic.AsyncAnthropic(api_key="test-key", base_url=claude.base_url)
        claude.fail(Fault.OVERLOADED, match="metal")     # the next metal branch gets a 529
        ...
        assert claude.peak_concurrency == 6

`POST /v1/messages` checks the key (`Authorization: Bearer` or `x-api-key`) and `anthropic-version`,
validates the body and its images (`emulators.claude_requests`), answers JSON-schema output,
forced tools or plain text with scripted per-class scores (`emulators.claude_answers`), reports
token usage with emulated prompt caching (`emulators.claude_usage`), and streams the API's SSE
events when `"stream": true`. Each call takes about `latency_s`; the first token comes after
`first_token_s`. Scripted faults (`Fault`) reproduce the API's failures on the wire.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from aiohttp import web

from emulators.claude_answers import (
    CLASS_ORDER,
    DEFAULT_SCORES,
    ReplyPlan,
    RequestKind,
    plan_reply,
    request_kind,
    synthesize,
)
from emulators.claude_requests import MAX_REQUEST_BYTES, ApiError, check_body, check_headers, parse_body
from emulators.claude_schema import SchemaSynthesizer
from emulators.claude_usage import CacheUse, PromptCache, layout, output_tokens

__all__ = ["DEFAULT_SCORES", "ClaudeEmulator", "Fault", "RecordedRequest", "RequestKind", "request_kind"]

DEFAULT_RETRY_AFTER_S: Final = 0.05
FIRST_TOKEN_SHARE: Final = 0.3
STREAM_CHUNK_CHARS: Final = 64
MAX_STREAM_DELTAS: Final = 12
STOP_GRACE_S: Final = 1.0
_DELTA_USAGE_KEYS: Final = (
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "output_tokens",
)
_MATCHES: Final = frozenset({*CLASS_ORDER, "branch", "aggregate", "single", "generic"})


class Fault(StrEnum):
    """A scripted failure, as the real API produces it."""

    RATE_LIMITED = "rate_limited"  # 429 rate_limit_error with retry-after
    SPEND_LIMIT = "spend_limit"  # 429 without retry-after
    OVERLOADED = "overloaded"  # 529 overloaded_error
    SERVER_ERROR = "server_error"  # 500 api_error
    HANG = "hang"  # never answers (until the client gives up or the emulator stops)
    TRUNCATED = "truncated"  # half an answer, stop_reason "max_tokens"
    REFUSAL = "refusal"  # stop_reason "refusal"
    INVALID_OUTPUT = "invalid_output"  # JSON that breaks the schema
    MALFORMED_JSON = "malformed_json"  # prose instead of JSON
    OVERLOADED_MIDSTREAM = "overloaded_midstream"  # message_start, then an SSE error event
    DROP_MIDSTREAM = "drop_midstream"  # message_start and some deltas, then the connection drops


_STATUS_FAULTS: Final[Mapping[Fault, tuple[int, str]]] = {
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
}
_REFUSAL_TEXT: Final = "I can't help with assessing this part."
_PROSE_TEXT: Final = "Metal looks like the best fit for this part, mostly for its strength."


@dataclass
class RecordedRequest:
    """One request as the emulator saw it, and how it was answered."""

    arrived_at: float
    headers: dict[str, str]
    body: dict[str, Any] = field(default_factory=dict)
    kind: RequestKind = field(default_factory=lambda: RequestKind("generic"))
    stream: bool = False
    request_id: str = ""
    image_sizes: list[tuple[int, int]] = field(default_factory=list)
    fault: Fault | None = None
    status: int | None = None  # None: no response was sent (hang, dropped connection)
    answer: Any = None  # the answer object (or text) before any fault was applied
    usage: dict[str, Any] | None = None
    started_at: float | None = None  # when it started answering (message_start)
    finished_at: float | None = None


@dataclass
class _FaultRule:
    fault: Fault
    match: str | None
    remaining: int | None
    retry_after_s: float | None

    def matches(self, kind: RequestKind) -> bool:
        return self.match is None or self.match in (kind.kind, kind.material)


@dataclass(frozen=True)
class _Reply:
    block_type: str  # "text" or "tool_use"
    text: str  # the text, or the tool input's JSON
    tool_input: Any
    tool_name: str | None
    stop_reason: str
    output_tokens: int


class _StoppingError(Exception):
    """The emulator is stopping: abandon the response."""


class ClaudeEmulator:
    """The Messages API on 127.0.0.1, with scripted answers, latency, faults and statistics."""

    def __init__(
        self,
        *,
        api_key: str = "test-key",
        latency_s: float = 0.0,
        first_token_s: float | None = None,
        scores: Mapping[str, int] | None = None,
    ) -> None:
        self.api_key = api_key
        self.latency_s = latency_s
        self.first_token_s = first_token_s
        self.scores: dict[str, int] = {**DEFAULT_SCORES, **(scores or {})}
        # per-request latency by class name or request kind ("aggregate", "single"), over latency_s
        self.latencies: dict[str, float] = {}
        self.responder: Callable[[RecordedRequest], Any] | None = None
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.peak_concurrency = 0
        self.cache = PromptCache()
        self._faults: list[_FaultRule] = []
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._stopping = asyncio.Event()
        self._arrivals = asyncio.Condition()
        self._ids = 0

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT`, once started."""
        if self._base_url is None:
            raise RuntimeError("the Claude emulator is not started")
        return self._base_url

    async def start(self) -> str:
        """Listen on an ephemeral loopback port; returns the base URL."""
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_post("/v1/messages", self._handle_messages)
        app.router.add_get("/_emulator/stats", self._handle_stats)
        app.router.add_post("/_emulator/reset", self._handle_reset)
        app.router.add_route("*", "/{tail:.*}", self._handle_unknown)
        self._stopping.clear()
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=STOP_GRACE_S)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self._base_url = f"http://127.0.0.1:{port}"
        return self._base_url

    async def stop(self) -> None:
        """Stop listening; hanging and in-progress responses are dropped at once."""
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def stats(self) -> dict[str, Any]:
        """Counts for a benchmark in another process: requests by kind, concurrency, token usage."""
        by_kind: dict[str, int] = {}
        for request in self.requests:
            by_kind[request.kind.kind] = by_kind.get(request.kind.kind, 0) + 1
        return {
            "requests": len(self.requests),
            "by_kind": by_kind,
            "in_flight": self.in_flight,
            "peak_concurrency": self.peak_concurrency,
            # time.monotonic() readings: comparable across processes on one Linux machine
            "timeline": [
                {
                    "kind": r.kind.kind,
                    "material": r.kind.material,
                    "arrived_at": r.arrived_at,
                    "finished_at": r.finished_at,
                    "status": r.status,
                }
                for r in self.requests
            ],
        }

    async def _handle_stats(self, _request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _handle_reset(self, _request: web.Request) -> web.Response:
        self.reset_stats()
        self.cache.clear()
        return web.json_response(self.stats())

    async def __aenter__(self) -> ClaudeEmulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def fail(
        self,
        fault: Fault,
        *,
        match: str | None = None,
        times: int | None = 1,
        retry_after_s: float | None = None,
    ) -> None:
        """Script `fault` for the next `times` matching requests (None: every one).

        `match` is a class name, a request kind ("branch", "aggregate", "single", "generic") or
        None for any request. `retry_after_s` sets retry-after headers (default 0.05 s for
        RATE_LIMITED; SPEND_LIMIT never sends them).
        """
        if match is not None and match not in _MATCHES:
            raise ValueError(f"match must be one of {sorted(_MATCHES)} or None, not {match!r}")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1, or None for every request")
        if fault is Fault.RATE_LIMITED and retry_after_s is None:
            retry_after_s = DEFAULT_RETRY_AFTER_S
        self._faults.append(_FaultRule(fault, match, times, retry_after_s))

    def clear_faults(self) -> None:
        """Drop every scripted fault."""
        self._faults.clear()

    def reset_stats(self) -> None:
        """Forget recorded requests and the concurrency peak (not the cache or faults)."""
        self.requests.clear()
        self.peak_concurrency = self.in_flight

    async def wait_for_requests(self, count: int) -> None:
        """Return once at least `count` requests have arrived since the last `reset_stats`."""
        async with self._arrivals:
            await self._arrivals.wait_for(lambda: len(self.requests) >= count)

    def _take_fault(self, kind: RequestKind) -> _FaultRule | None:
        for rule in self._faults:
            if rule.matches(kind):
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self._faults.remove(rule)
                return rule
        return None

    def _timing(self, record: RecordedRequest) -> tuple[float, float]:
        """(first token, total) seconds for this request."""
        latency_s = self.latencies.get(record.kind.material or record.kind.kind, self.latency_s)
        share_s = latency_s * FIRST_TOKEN_SHARE
        first_s = self.first_token_s if self.first_token_s is not None else share_s
        return first_s, max(latency_s, first_s)

    def _new_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}_emu{self._ids:06d}{uuid.uuid4().hex[:14]}"

    async def _sleep_until(self, deadline: float) -> None:
        delay = deadline - time.monotonic()
        if self._stopping.is_set():
            raise _StoppingError
        if delay <= 0:
            return
        try:
            async with asyncio.timeout(delay):
                await self._stopping.wait()
        except TimeoutError:
            return
        raise _StoppingError

    async def _handle_unknown(self, request: web.Request) -> web.Response:
        error = ApiError(404, f"Not Found: {request.method} {request.path}")
        request_id = self._new_id("req")
        return web.json_response(error.body(request_id), status=404, headers={"request-id": request_id})

    async def _handle_messages(self, request: web.Request) -> web.StreamResponse:
        record = RecordedRequest(
            arrived_at=time.monotonic(),
            headers={key.lower(): value for key, value in request.headers.items()},
            request_id=self._new_id("req"),
        )
        self.requests.append(record)
        self.in_flight += 1
        self.peak_concurrency = max(self.peak_concurrency, self.in_flight)
        try:
            async with self._arrivals:
                self._arrivals.notify_all()
            return await self._serve(request, record)
        except ApiError as error:
            record.status = error.status
            headers = {"request-id": record.request_id, **error.headers}
            return web.json_response(error.body(record.request_id), status=error.status, headers=headers)
        except (_StoppingError, ConnectionResetError):
            _drop(request)
            return web.Response(status=499)
        finally:
            self.in_flight -= 1
            record.finished_at = time.monotonic()

    async def _serve(self, request: web.Request, record: RecordedRequest) -> web.StreamResponse:
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise ApiError(413, f"Request exceeds the maximum allowed number of bytes ({MAX_REQUEST_BYTES}).") from None
        body_error: ApiError | None = None
        try:
            record.body = parse_body(raw)
        except ApiError as error:
            body_error = error
        record.kind = request_kind(record.body)
        record.stream = record.body.get("stream") is True
        check_headers(request.headers, self.api_key)
        if body_error is not None:
            raise body_error
        record.image_sizes = check_body(record.body)
        try:
            plan = plan_reply(record.body)
        except ValueError as error:
            raise ApiError(400, str(error)) from None
        rule = self._take_fault(record.kind)
        record.fault = rule.fault if rule else None
        _raise_status_fault(rule, record.stream)
        if rule is not None and rule.fault is Fault.HANG:
            await self._stopping.wait()
            raise _StoppingError
        cache_use = self.cache.lookup(layout(record.body, record.image_sizes), time.monotonic())
        record.answer = synthesize(plan, record.body, record.kind, self.scores)  # the responder may edit it
        value = self.responder(record) if self.responder is not None else None
        if value is not None:
            record.answer = value
        value = record.answer
        reply = _reply(plan, value, record.fault, int(record.body["max_tokens"]))
        record.usage = cache_use.usage(reply.output_tokens)
        if record.stream:
            return await self._stream(request, record, reply, cache_use)
        return await self._respond(request, record, reply, cache_use)

    def _message(
        self,
        record: RecordedRequest,
        content: list[dict[str, Any]],
        stop_reason: str | None,
        usage: dict[str, Any],
    ) -> dict[str, Any]:
        details = {"type": "refusal", "category": None, "explanation": None} if stop_reason == "refusal" else None
        return {
            "id": self._new_id("msg"),
            "type": "message",
            "role": "assistant",
            "model": record.body["model"],
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "stop_details": details,
            "usage": usage,
        }

    def _started(self, record: RecordedRequest, cache_use: CacheUse) -> None:
        record.started_at = time.monotonic()
        self.cache.commit(cache_use.pending, record.started_at)

    async def _respond(
        self, request: web.Request, record: RecordedRequest, reply: _Reply, cache_use: CacheUse
    ) -> web.StreamResponse:
        first_token_s, latency_s = self._timing(record)
        await self._sleep_until(record.arrived_at + first_token_s)
        self._started(record, cache_use)
        await self._sleep_until(record.arrived_at + latency_s)
        if record.fault is Fault.DROP_MIDSTREAM:
            _drop(request)
            return web.Response(status=499)
        block = _content_block(reply, self._new_id("toolu"), complete=True)
        assert record.usage is not None
        message = self._message(record, [block], reply.stop_reason, record.usage)
        record.status = 200
        return web.json_response(message, headers={"request-id": record.request_id})

    async def _stream(
        self, request: web.Request, record: RecordedRequest, reply: _Reply, cache_use: CacheUse
    ) -> web.StreamResponse:
        first_token_s, latency_s = self._timing(record)
        response = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "request-id": record.request_id,
            },
        )
        await response.prepare(request)
        record.status = 200

        async def send(event: str, data: Mapping[str, Any]) -> None:
            payload = json.dumps(data, separators=(",", ":"))
            await response.write(f"event: {event}\ndata: {payload}\n\n".encode())

        await self._sleep_until(record.arrived_at + first_token_s)
        assert record.usage is not None
        start_usage = {**record.usage, "output_tokens": 1}
        self._started(record, cache_use)  # readable by the time the client sees message_start
        await send(
            "message_start",
            {"type": "message_start", "message": self._message(record, [], None, start_usage)},
        )
        if record.fault is Fault.OVERLOADED_MIDSTREAM:
            error = ApiError(529, "Overloaded")
            await send("error", error.body(record.request_id))
            await response.write_eof()
            return response
        start_block = _content_block(reply, self._new_id("toolu"), complete=False)
        await send("content_block_start", {"type": "content_block_start", "index": 0, "content_block": start_block})
        await send("ping", {"type": "ping"})
        chunks = _chunks(reply.text)
        for number, chunk in enumerate(chunks, start=1):
            await self._sleep_until(
                record.arrived_at + first_token_s + (latency_s - first_token_s) * number / len(chunks)
            )
            delta = (
                {"type": "text_delta", "text": chunk}
                if reply.block_type == "text"
                else {"type": "input_json_delta", "partial_json": chunk}
            )
            await send("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
            if record.fault is Fault.DROP_MIDSTREAM and number >= max(1, len(chunks) // 2):
                _drop(request)
                record.status = None
                return response
        await send("content_block_stop", {"type": "content_block_stop", "index": 0})
        final = self._message(record, [], reply.stop_reason, record.usage)
        usage = {key: value for key, value in record.usage.items() if key in _DELTA_USAGE_KEYS}
        delta = {key: final[key] for key in ("stop_reason", "stop_sequence", "stop_details")}
        await send("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
        await send("message_stop", {"type": "message_stop"})
        await response.write_eof()
        return response


def _raise_status_fault(rule: _FaultRule | None, stream: bool) -> None:
    if rule is None:
        return
    fault = rule.fault
    if fault is Fault.OVERLOADED_MIDSTREAM and not stream:
        fault = Fault.OVERLOADED  # no stream to break: the overload shows as a plain 529
    if fault not in _STATUS_FAULTS:
        return
    status, message = _STATUS_FAULTS[fault]
    headers: dict[str, str] = {}
    if rule.retry_after_s is not None and fault is not Fault.SPEND_LIMIT:
        headers["retry-after"] = str(max(1, math.ceil(rule.retry_after_s)))
        headers["retry-after-ms"] = str(round(rule.retry_after_s * 1000))
    details = {"error_code": "enforced_spend_limit_reached"} if fault is Fault.SPEND_LIMIT else None
    raise ApiError(status, message, headers=headers, details=details)


def _reply(plan: ReplyPlan, value: Any, fault: Fault | None, max_tokens: int) -> _Reply:
    """The answer as delivered, after the fault (if any) and the max_tokens limit."""
    block_type = "tool_use" if plan.mode == "tool" else "text"
    stop_reason = "tool_use" if plan.mode == "tool" else "end_turn"
    if fault is Fault.INVALID_OUTPUT and plan.schema is not None:
        value = SchemaSynthesizer(plan.schema).broken(value)
    if fault is Fault.REFUSAL:
        return _Reply("text", _REFUSAL_TEXT, None, None, "refusal", output_tokens(_REFUSAL_TEXT))
    if fault is Fault.MALFORMED_JSON:
        return _Reply("text", _PROSE_TEXT, None, None, "end_turn", output_tokens(_PROSE_TEXT))
    text = value if isinstance(value, str) and plan.mode == "text" else json.dumps(value)
    limit_chars = max_tokens * 4
    if fault is Fault.TRUNCATED or output_tokens(text) > max_tokens:
        cut = min(len(text) // 2, limit_chars) if fault is Fault.TRUNCATED else limit_chars
        return _Reply(block_type, text[: max(1, cut)], {}, plan.tool_name, "max_tokens", max_tokens)
    return _Reply(block_type, text, value, plan.tool_name, stop_reason, output_tokens(text))


def _content_block(reply: _Reply, tool_id: str, *, complete: bool) -> dict[str, Any]:
    if reply.block_type == "tool_use":
        tool_input = reply.tool_input if complete and isinstance(reply.tool_input, dict) else {}
        return {"type": "tool_use", "id": tool_id, "name": reply.tool_name, "input": tool_input}
    return {"type": "text", "text": reply.text if complete else ""}


def _chunks(text: str) -> list[str]:
    count = max(1, min(MAX_STREAM_DELTAS, math.ceil(len(text) / STREAM_CHUNK_CHARS)))
    size = math.ceil(len(text) / count) or 1
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _drop(request: web.Request) -> None:
    """Close the connection without finishing the response."""
    if request.transport is not None:
        request.transport.abort()


async def serve(latency_s: float, first_token_s: float | None, api_key: str) -> None:
    """Run an emulator until interrupted, printing its base URL on the first line of stdout."""
    async with ClaudeEmulator(api_key=api_key, latency_s=latency_s, first_token_s=first_token_s) as emulator:
        print(emulator.base_url, flush=True)
        await asyncio.Event().wait()


def main() -> None:
    """`python -m emulators.claude --latency-s 1.0`: a standalone emulator for benchmarks."""
    parser = argparse.ArgumentParser(description="Loopback Claude Messages API emulator")
    parser.add_argument("--latency-s", type=float, default=1.0, help="time per call")
    parser.add_argument("--first-token-s", type=float, default=None, help="time to message_start")
    parser.add_argument("--api-key", default="test-key")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.latency_s, args.first_token_s, args.api_key))


if __name__ == "__main__":
    main()
