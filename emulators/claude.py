"""A loopback emulator of the Anthropic Messages API, for driving the real `anthropic` SDK in tests.

    async with ClaudeEmulator(latency_s=0.2, seed=7) as claude:
        client = anthropic.AsyncAnthropic(api_key="test-key", base_url=claude.base_url)
        claude.fail(Fault.OVERLOADED, match="metal")     # the next metal branch gets a 529
        ...
        assert claude.peak_concurrency == 6

`POST /v1/messages` checks the key (`Authorization: Bearer` or `x-api-key`) and `anthropic-version`,
validates the body, its tools and its images (`emulators.claude_requests`: at most 100 images, each
at most 2000 px once there are more than 20, 413 over 32 MB), looks the model up
(`emulators.claude_models`: Sonnet 5 / 5.5, Opus 5 / 5.5, Haiku 4.5; any other id is a 404) and
applies its rules (`emulators.claude_features`: thinking types, effort, sampling parameters, forced
tools, prefill). It judges the part from the request's words and photo (`emulators.claude_assessment`)
and answers JSON-schema output, forced tools or plain text (`emulators.claude_answers`), or a
follow-up question with text and perhaps a `propose_rerun` call (`emulators.claude_followup`), after
adaptive thinking drawn from an assumed distribution (`emulators.claude_thinking`), all within
`max_tokens` (`emulators.claude_reply`). It reports token usage with the model's tokenizer and
emulated prompt caching (`emulators.claude_usage`), streams the API's SSE events when
`"stream": true`, and takes the time `emulators.claude_timing` plans. Scripted faults
(`emulators.claude_faults.Fault`) reproduce the API's failures on the wire. `GET /_emulator/stats`
gives a benchmark in another process every request's planned numbers.

Thinking: models think as their docs say (adaptive thinking on by default on 5.x), in-process and
from `python -m emulators.claude` alike. `thinking=False` (`--no-thinking`) makes every request
answer without thinking, for tests about something else; request rules still apply.
`thinking_tokens` pins it: an int, or a function of the `RecordedRequest`, used for every request
that would think (even with `thinking=False`); a request whose thinking is off never thinks.

Rate limits: none unless asked. `org_limits(requests_per_minute=..., input_tokens_per_minute=...,
output_tokens_per_minute=...)` (or `limits=` to the constructor, `--requests-per-minute` etc. on the
command line) sets one organisation's limits for every client of this emulator, enforced and reported
in `anthropic-ratelimit-*` headers as `emulators.claude_ratelimit` describes; `rate_limited` counts
the 429s served by limit kind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final

from aiohttp import web

from emulators.claude_answers import CLASS_ORDER, RequestKind, plan_reply, request_kind, synthesize, user_text
from emulators.claude_assessment import DEFAULT_SCORES, assess
from emulators.claude_faults import MALFORMED_DATA, Fault, FaultRule, raise_status_fault
from emulators.claude_features import ThinkingPlan, check_features
from emulators.claude_models import MODELS, ModelSpec, model_spec
from emulators.claude_ratelimit import (
    Clock,
    LimitKind,
    OrgLimits,
    RateLimiter,
    Reservation,
    add_limit_arguments,
    limits_from_arguments,
)
from emulators.claude_records import RecordedRequest
from emulators.claude_reply import Reply, answer_block, build_reply, signature, thinking_block, tool_after_block
from emulators.claude_requests import MAX_REQUEST_BYTES, ApiError, check_body, check_headers, parse_body
from emulators.claude_stream import StreamPlan, stream_events
from emulators.claude_thinking import ThinkingDraws, adaptive_thinking_tokens, manual_thinking_tokens
from emulators.claude_timing import TimingPlan, plan_timing
from emulators.claude_usage import CacheUse, PromptCache, PromptLayout, layout

__all__ = ["DEFAULT_SCORES", "ClaudeEmulator", "Fault", "OrgLimits", "RecordedRequest", "RequestKind", "request_kind"]

DEFAULT_SEED: Final = 0
STOP_GRACE_S: Final = 1.0
_DELTA_USAGE_KEYS: Final = (
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "output_tokens",
    "output_tokens_details",
)
_MATCHES: Final = frozenset({*CLASS_ORDER, "branch", "aggregate", "single", "follow_up", "generic"})


ThinkingOverride = int | Callable[[RecordedRequest], int]


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
        latencies: Mapping[str, float] | None = None,
        output_tokens_per_s: float | None = None,
        scores: Mapping[str, int] | None = None,
        seed: int | None = DEFAULT_SEED,
        thinking: bool = True,
        thinking_tokens: ThinkingOverride | None = None,
        limits: OrgLimits | None = None,
    ) -> None:
        self.api_key = api_key
        self.latency_s = latency_s
        self.first_token_s = first_token_s
        # per-request latency by class name or request kind ("aggregate", "single"), over latency_s
        self.latencies: dict[str, float] = dict(latencies or {})
        self.output_tokens_per_s = output_tokens_per_s
        self.scores: dict[str, int] = {**DEFAULT_SCORES, **(scores or {})}
        self.thinking = thinking
        self.thinking_tokens = thinking_tokens
        self.responder: Callable[[RecordedRequest], Any] | None = None
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.peak_concurrency = 0
        self.cache = PromptCache()
        self._pinned = frozenset(scores or {})
        self._draws = ThinkingDraws(seed)
        self._faults: list[FaultRule] = []
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None
        self._stopping = asyncio.Event()
        self._arrivals = asyncio.Condition()
        self._ids = 0
        self.limiter: RateLimiter | None = None
        self._reservations: dict[str, Reservation] = {}
        if limits is not None and limits.per_kind():
            self.limiter = RateLimiter(limits)

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
        """Counts for a benchmark in another process: requests by kind, concurrency, each request's plan."""
        by_kind: dict[str, int] = {}
        for request in self.requests:
            by_kind[request.kind.kind] = by_kind.get(request.kind.kind, 0) + 1
        return {
            "requests": len(self.requests),
            "by_kind": by_kind,
            "in_flight": self.in_flight,
            "peak_concurrency": self.peak_concurrency,
            "rate_limited": self.rate_limited,
            # time.monotonic() readings: comparable across processes on one Linux machine
            "timeline": [r.timeline_entry() for r in self.requests],
        }

    async def _handle_stats(self, _request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _handle_reset(self, _request: web.Request) -> web.Response:
        self.reset_stats()
        self.cache.clear()
        if self.limiter is not None:
            self.limiter.refill()
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

        `match` is a class name, a request kind ("branch", "aggregate", "single", "follow_up", "generic") or
        None for any request. `retry_after_s` sets retry-after headers on status faults (default
        0.05 s for RATE_LIMITED; SPEND_LIMIT never sends them).
        """
        if match is not None and match not in _MATCHES:
            raise ValueError(f"match must be one of {sorted(_MATCHES)} or None, not {match!r}")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1, or None for every request")
        self._faults.append(FaultRule(fault, match, times, retry_after_s))

    def clear_faults(self) -> None:
        """Drop every scripted fault."""
        self._faults.clear()

    def org_limits(
        self,
        *,
        requests_per_minute: int | None = None,
        input_tokens_per_minute: int | None = None,
        output_tokens_per_minute: int | None = None,
        clock: Clock = time.time,
    ) -> None:
        """Enforce these per-minute limits, organisation-wide, from full buckets (all None: no limits).

        `clock` gives epoch seconds; a test passes its own to move time without sleeping.
        """
        limits = OrgLimits(requests_per_minute, input_tokens_per_minute, output_tokens_per_minute)
        self.limiter = RateLimiter(limits, clock) if limits.per_kind() else None
        self._reservations.clear()

    @property
    def rate_limited(self) -> dict[LimitKind, int]:
        """429s served by the org limits since the last `reset_stats`, by the limit that was exceeded."""
        return dict(self.limiter.rejected) if self.limiter is not None else {}

    def reset_stats(self) -> None:
        """Forget recorded requests, the concurrency peak and the 429 counts (not the cache, faults or buckets)."""
        self.requests.clear()
        self.peak_concurrency = self.in_flight
        if self.limiter is not None:
            self.limiter.rejected.clear()

    async def wait_for_requests(self, count: int) -> None:
        """Return once at least `count` requests have arrived since the last `reset_stats`."""
        async with self._arrivals:
            await self._arrivals.wait_for(lambda: len(self.requests) >= count)

    def pinned_scores(self) -> frozenset[str]:
        """Classes whose score the test fixed: given to the constructor, or changed in `scores` since."""
        return self._pinned | {m for m, s in self.scores.items() if s != DEFAULT_SCORES.get(m)}

    def _take_fault(self, kind: RequestKind) -> FaultRule | None:
        for rule in self._faults:
            if rule.matches(kind.kind, kind.material):
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self._faults.remove(rule)
                return rule
        return None

    def _thinking_tokens(self, record: RecordedRequest, plan: ThinkingPlan) -> int:
        if plan.mode == "off":
            return 0
        if self.thinking_tokens is not None:
            pinned = self.thinking_tokens
            return max(0, pinned if isinstance(pinned, int) else pinned(record))
        if not self.thinking:
            return 0
        if plan.mode == "manual" and plan.budget_tokens is not None:
            return manual_thinking_tokens(record.seed, plan.budget_tokens)
        return adaptive_thinking_tokens(record.seed, plan.effort or "high")

    def _timing(self, record: RecordedRequest, reply: Reply) -> TimingPlan:
        return plan_timing(
            latency_s=self.latencies.get(record.kind.material or record.kind.kind, self.latency_s),
            first_token_s=self.first_token_s,
            thinking_tokens=reply.thinking_tokens,
            output_tokens=reply.output_tokens,
            output_tokens_per_s=self.output_tokens_per_s,
        )

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
            seed=self._draws.next_seed(),  # before any await: arrival order
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
            self._settle(record)
            headers = {"request-id": record.request_id, **self._limit_headers(record), **error.headers}
            return web.json_response(error.body(record.request_id), status=error.status, headers=headers)
        except (_StoppingError, ConnectionResetError):
            _drop(request)
            return web.Response(status=499)
        finally:
            self._settle(record)
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
        spec = model_spec(record.body["model"])
        record.model = spec.model_id
        try:
            plan = plan_reply(record.body)
        except ValueError as error:
            raise ApiError(400, str(error)) from None
        thinking = check_features(record.body, spec, forced_tool=plan.mode == "tool")
        record.effort = thinking.effort
        prompt = layout(record.body, record.image_sizes, spec.tokenizer)
        self._admit(record, spec, prompt)
        rule = self._take_fault(record.kind)
        record.fault = rule.fault if rule else None
        raise_status_fault(rule, record.stream)
        if rule is not None and rule.fault is Fault.HANG:
            await self._stopping.wait()
            raise _StoppingError
        cache_use = self.cache.lookup(prompt, time.monotonic(), min_tokens=spec.min_cacheable_tokens)
        assessment = assess(record.body, user_text(record.body), self.scores, self.pinned_scores())
        record.answer = synthesize(plan, record.body, record.kind, assessment)  # the responder may edit it
        value = self.responder(record) if self.responder is not None else None
        if value is not None:
            record.answer = value
        reply = build_reply(
            plan,
            record.answer,
            record.fault,
            max_tokens=int(record.body["max_tokens"]),
            thinking_tokens=self._thinking_tokens(record, thinking),
            tokenizer=spec.tokenizer,
            summarized=thinking.display == "summarized",
        )
        record.thinking_tokens, record.output_tokens = reply.thinking_tokens, reply.output_tokens
        record.stop_reason = reply.stop_reason
        record.usage = cache_use.usage(reply.output_tokens, reply.thinking_tokens)
        timing = self._timing(record, reply)
        record.first_byte_s, record.service_s = timing.first_byte_s, timing.service_s
        if record.stream:
            return await self._stream(request, record, reply, cache_use, timing)
        return await self._respond(request, record, reply, cache_use, timing)

    def _admit(self, record: RecordedRequest, spec: ModelSpec, prompt: PromptLayout) -> None:
        """Take the request from the org's buckets at its start, or raise the 429."""
        if self.limiter is None:
            return
        use = self.cache.peek(prompt, time.monotonic(), min_tokens=spec.min_cacheable_tokens)
        self._reservations[record.request_id] = self.limiter.admit(
            spec.limit_class,
            record.body["model"],
            input_tokens=use.rate_limited_input_tokens,
            max_tokens=int(record.body["max_tokens"]),
        )

    def _settle(self, record: RecordedRequest) -> None:
        """Give back the output the request reserved and did not generate (once)."""
        reservation = self._reservations.pop(record.request_id, None)
        if reservation is not None and self.limiter is not None:
            self.limiter.settle(reservation, record.output_tokens or 0)

    def _limit_headers(self, record: RecordedRequest) -> dict[str, str]:
        if self.limiter is None or record.model is None:
            return {}
        return self.limiter.headers(MODELS[record.model].limit_class)

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
        self, request: web.Request, record: RecordedRequest, reply: Reply, cache_use: CacheUse, timing: TimingPlan
    ) -> web.StreamResponse:
        await self._sleep_until(record.arrived_at + timing.first_byte_s)
        self._started(record, cache_use)
        await self._sleep_until(record.arrived_at + timing.service_s)
        if record.fault is Fault.DROP_MIDSTREAM:
            _drop(request)
            return web.Response(status=499)
        content: list[dict[str, Any]] = []
        if reply.thinking_tokens:
            content.append(thinking_block(reply, signature(record.request_id, reply.thinking_tokens), complete=True))
        if reply.has_answer:
            content.append(answer_block(reply, self._new_id("toolu"), complete=True))
        if reply.has_answer and reply.tool_after is not None:
            content.append(tool_after_block(reply, self._new_id("toolu"), complete=True))
        assert record.usage is not None
        message = json.dumps(self._message(record, content, reply.stop_reason, record.usage))
        record.status = 200
        if record.fault is Fault.MALFORMED_CHUNK:
            message = message[: len(message) // 2]
        self._settle(record)
        headers = {"request-id": record.request_id, **self._limit_headers(record)}
        return web.Response(text=message, content_type="application/json", headers=headers)

    async def _stream(
        self, request: web.Request, record: RecordedRequest, reply: Reply, cache_use: CacheUse, timing: TimingPlan
    ) -> web.StreamResponse:
        headers = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
        headers.update({"request-id": record.request_id, **self._limit_headers(record)})
        response = web.StreamResponse(status=200, headers=headers)
        await response.prepare(request)
        record.status = 200

        async def send(event: str, data: Mapping[str, Any]) -> None:
            if event == "message_delta":
                self._settle(record)  # the output is known: settled before the client can see the end
            await response.write(f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode())

        async def pace(offset_s: float) -> None:
            await self._sleep_until(record.arrived_at + offset_s)

        await pace(timing.first_byte_s)
        assert record.usage is not None
        self._started(record, cache_use)  # readable by the time the client sees message_start
        start_usage = {**record.usage, "output_tokens": 1, "output_tokens_details": {"thinking_tokens": 0}}
        final = self._message(record, [], reply.stop_reason, record.usage)
        plan = StreamPlan(
            reply=reply,
            timing=timing,
            start_message=self._message(record, [], None, start_usage),
            end_delta={key: final[key] for key in ("stop_reason", "stop_sequence", "stop_details")},
            end_usage={key: value for key, value in record.usage.items() if key in _DELTA_USAGE_KEYS},
            signature=signature(record.request_id, reply.thinking_tokens),
            tool_id=self._new_id("toolu"),
            overloaded=record.fault is Fault.OVERLOADED_MIDSTREAM,
            breaks=record.fault in (Fault.DROP_MIDSTREAM, Fault.MALFORMED_CHUNK),
        )
        ended = await stream_events(plan, send, pace)
        if ended == "overloaded":
            await send("error", ApiError(529, "Overloaded").body(record.request_id))
        elif ended == "broken" and record.fault is Fault.MALFORMED_CHUNK:
            await response.write(f"event: content_block_delta\ndata: {MALFORMED_DATA}\n\n".encode())
        elif ended == "broken":
            _drop(request)
            record.status = None
            return response
        await response.write_eof()
        return response


def _drop(request: web.Request) -> None:
    """Close the connection without finishing the response."""
    if request.transport is not None:
        request.transport.abort()


async def serve(
    latency_s: float,
    first_token_s: float | None,
    api_key: str,
    *,
    output_tokens_per_s: float | None = None,
    seed: int | None = DEFAULT_SEED,
    thinking: bool = True,
    limits: OrgLimits | None = None,
) -> None:
    """Run an emulator until interrupted, printing its base URL on the first line of stdout."""
    emulator = ClaudeEmulator(
        api_key=api_key,
        latency_s=latency_s,
        first_token_s=first_token_s,
        output_tokens_per_s=output_tokens_per_s,
        seed=seed,
        thinking=thinking,
        limits=limits,
    )
    async with emulator:
        print(emulator.base_url, flush=True)
        await asyncio.Event().wait()


def main() -> None:
    """`python -m emulators.claude --latency-s 1.0`: a standalone emulator for benchmarks."""
    parser = argparse.ArgumentParser(description="Loopback Claude Messages API emulator")
    parser.add_argument("--latency-s", type=float, default=1.0, help="base time per call")
    parser.add_argument("--first-token-s", type=float, default=None, help="time to message_start")
    parser.add_argument(
        "--output-tokens-per-s", type=float, default=None, help="generation speed; adds output_tokens / speed"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the thinking draws")
    parser.add_argument("--no-thinking", action="store_true", help="answer every request without thinking")
    parser.add_argument("--api-key", default="test-key")
    add_limit_arguments(parser)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            serve(
                args.latency_s,
                args.first_token_s,
                args.api_key,
                output_tokens_per_s=args.output_tokens_per_s,
                seed=args.seed,
                thinking=not args.no_thinking,
                limits=limits_from_arguments(args),
            )
        )


if __name__ == "__main__":
    main()
