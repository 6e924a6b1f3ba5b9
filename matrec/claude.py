"""The one adapter to Claude: one structured answer, or one streamed free-text answer, errors mapped to ours.

Every call streams, so the engine learns when a response starts (the moment a cached prefix
becomes readable by other requests) and can time the first byte. The answer is read by block type
(Claude 5.x sends a thinking block before the text) and validated here against the requested
pydantic model; refusals, truncation and invalid JSON become `ModelCallError`s with a readable
reason, as do API and transport errors.

The SDK's own retries are off (`max_retries=0`): `matrec.retry` is the one retry loop, outside the
concurrency slot, honouring retry-after within the branch's deadline. So each `structured()` call
is exactly one HTTP attempt, and its error carries what the loop needs (`kind`, `retry_after_s`).

`converse()` is the free-text form (follow-up questions): it yields the answer's text deltas as
they arrive and ends with the whole answer and the tool calls it made (read from the SDK's final
message, whose tool inputs the SDK assembles from the `input_json_delta`s).

Every response's `anthropic-ratelimit-*` headers (a stream's as it starts, an error's too) are
parsed into `RateLimits`, kept as `rate_limits` and handed to each `watch_rate_limits` callback:
that is how a shared budget learns the organisation's limits and what is left of them.
`structured_cost` and `chat_cost` estimate what a request will use of those limits.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import anthropic
import httpx2
import pydantic
from anthropic.types import MessageParam, TextBlockParam

from matrec.budget import CallCost, RateLimits, call_cost
from matrec.errors import CallFailure, ConfigError, ModelCallError
from matrec.images import PreparedImage
from matrec.models import Effort, model_info
from matrec.results import TokenUsage
from matrec.settings import EngineSettings
from matrec.urls import redact_url

T = TypeVar("T", bound=pydantic.BaseModel)

_EPHEMERAL: dict[str, str] = {"type": "ephemeral"}
_OVERLOADED_STATUS = 529
_UNAVAILABLE_STATUS = 503
_TOO_MANY_REQUESTS_STATUS = 429
_RETRYABLE_CLIENT_STATUSES = frozenset({408, 409})
_MS_PER_S = 1000.0


@dataclass(frozen=True)
class ChatStarted:
    """The response began (its prefix is now readable from the cache by other requests)."""


@dataclass(frozen=True)
class ChatText:
    """A piece of the answer's text, as it arrived."""

    text: str


@dataclass(frozen=True)
class ToolCall:
    """A tool the model called, with its input as sent."""

    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class ChatDone:
    """The whole answer: its text, the tools it called, what it was billed; `truncated` when cut at max_tokens."""

    text: str
    tool_calls: list[ToolCall]
    usage: TokenUsage
    truncated: bool = False


ChatEvent = ChatStarted | ChatText | ChatDone


@dataclass(frozen=True)
class Reply(Generic[T]):
    """A validated answer and what it cost."""

    value: T
    usage: TokenUsage


def _usage(message: Any) -> TokenUsage:
    usage = message.usage
    return TokenUsage(
        input_tokens=usage.input_tokens or 0,
        output_tokens=usage.output_tokens or 0,
        cache_write_tokens=usage.cache_creation_input_tokens or 0,
        cache_read_tokens=usage.cache_read_input_tokens or 0,
    )


def retry_after_s(headers: Any) -> float | None:
    """The wait the API asks for (`retry-after-ms`, or `retry-after` as seconds or an HTTP date)."""
    if headers is None:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms is not None:
        try:
            return max(float(raw_ms) / _MS_PER_S, 0.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        parsed = email.utils.parsedate_tz(raw)
        return None if parsed is None else max(email.utils.mktime_tz(parsed) - time.time(), 0.0)


def _api_message(error: anthropic.APIStatusError) -> tuple[str, str]:
    """The API's own error type and message, not the SDK's dict rendering."""
    body = error.body if isinstance(error.body, dict) else {}
    detail = body.get("error") if isinstance(body.get("error"), dict) else body
    error_type = str(detail.get("type", "")) if isinstance(detail, dict) else ""
    message = str(detail.get("message", "")) if isinstance(detail, dict) else ""
    return error_type, message or str(error.body or error.message)


def _status_failure(error: anthropic.APIStatusError, model: str) -> ModelCallError:
    status = error.status_code
    error_type, message = _api_message(error)
    said = f"{status} {error_type}: {message}" if error_type else f"{status}: {message}"
    wait_s = retry_after_s(error.response.headers) if error.response is not None else None
    if status == _OVERLOADED_STATUS or error_type == "overloaded_error":
        return ModelCallError(CallFailure.OVERLOADED, f"Claude is overloaded right now ({said})", retry_after_s=wait_s)
    if status < 400 and error_type == "rate_limit_error":
        # an `error` event mid-stream carries no retry-after: back off like an overload
        return ModelCallError(CallFailure.RATE_LIMITED, f"Claude's rate limit was hit mid-answer ({message})")
    if status < 400:
        # any other `error` event after the stream started: the answer broke off
        return ModelCallError(CallFailure.DROPPED, f"Claude's answer broke off with an error ({error_type}: {message})")
    if status == _TOO_MANY_REQUESTS_STATUS:
        if wait_s is None:
            reason = f"the Anthropic account's spend limit is reached ({said}); not retried"
            return ModelCallError(CallFailure.SPEND_LIMIT, reason)
        return ModelCallError(CallFailure.RATE_LIMITED, f"Claude's rate limit was hit ({said})", retry_after_s=wait_s)
    if status == _UNAVAILABLE_STATUS:
        return ModelCallError(
            CallFailure.UNAVAILABLE, f"Claude is temporarily unavailable ({said})", retry_after_s=wait_s
        )
    if status >= 500 or status in _RETRYABLE_CLIENT_STATUSES:
        return ModelCallError(CallFailure.SERVER_ERROR, f"Claude had a server error ({said})", retry_after_s=wait_s)
    if isinstance(error, anthropic.AuthenticationError | anthropic.PermissionDeniedError):
        return ModelCallError(CallFailure.AUTH, f"Claude rejected the API key ({said}); check ANTHROPIC_API_KEY")
    if isinstance(error, anthropic.NotFoundError):
        return ModelCallError(CallFailure.BAD_REQUEST, f"Claude has no model {model!r} ({said}); check MATREC_MODEL")
    return ModelCallError(CallFailure.BAD_REQUEST, f"Claude rejected the request ({said})")


class Claude:
    """Structured calls to one Claude model through a shared AsyncAnthropic client."""

    def __init__(self, client: anthropic.AsyncAnthropic, model: str, *, request_timeout_s: float | None = None) -> None:
        self._client = client
        self.model = model
        self.request_timeout_s = request_timeout_s
        info = model_info(model)
        # A model we do not know gets effort as configured: every current model with adaptive thinking takes it.
        self.takes_effort = info.takes_effort if info else True
        self.max_output_tokens = info.max_output_tokens if info else None
        self.rate_limits: RateLimits | None = None  # the latest response's rate-limit headers
        self._watchers: list[Callable[[RateLimits], None]] = []

    @classmethod
    def from_settings(cls, settings: EngineSettings) -> Claude:
        """Build the client once per process; raises ConfigError when no API key is set."""
        if settings.anthropic_api_key is None or not settings.anthropic_api_key.get_secret_value():
            raise ConfigError(
                "ANTHROPIC_API_KEY is not set: export ANTHROPIC_API_KEY=sk-ant-... "
                "(or put it in a .env file in the working directory)"
            )
        client = anthropic.AsyncAnthropic(
            api_key=settings.anthropic_api_key.get_secret_value(),
            base_url=settings.anthropic_base_url,
            timeout=settings.request_timeout_s,
            max_retries=0,  # matrec.retry is the one retry loop
        )
        return cls(client, settings.model, request_timeout_s=settings.request_timeout_s)

    @property
    def base_url(self) -> str:
        """Where the Messages API is reached, for messages that name it (any password masked)."""
        return redact_url(str(self._client.base_url).rstrip("/"))

    async def aclose(self) -> None:
        """Release the HTTP connections."""
        await self._client.close()

    def watch_rate_limits(self, callback: Callable[[RateLimits], None]) -> None:
        """Call `callback` with the rate-limit headers of every response from now on (once per callback)."""
        if callback not in self._watchers:
            self._watchers.append(callback)

    def _observe(self, headers: Any) -> None:
        if headers is None:
            return
        limits = RateLimits.from_headers(headers, time.time())
        if limits is None:
            return
        self.rate_limits = limits
        for callback in self._watchers:
            callback(limits)

    async def structured(
        self,
        *,
        system: str,
        images: Sequence[PreparedImage],
        shared_text: str,
        task_text: str,
        output: type[T],
        max_tokens: int,
        cache_prefix: bool,
        effort: Effort | None = None,
        on_started: Callable[[], None] | None = None,
    ) -> Reply[T]:
        """One attempt at an answer of type `output`; the prefix (system, images, shared_text) is cacheable."""
        messages = _messages(images, shared_text, task_text, cache_prefix)
        output_config: dict[str, Any] = {"format": {"type": "json_schema", "schema": _schema(output)}}
        if effort is not None and self.takes_effort:
            output_config["effort"] = effort
        with self._mapped_errors():
            async with self._client.messages.stream(
                model=self.model,
                max_tokens=max_tokens,
                system=[TextBlockParam(type="text", text=system)],
                messages=messages,
                output_config=output_config,  # type: ignore[arg-type]  # a TypedDict built as a dict
            ) as stream:
                self._observe(stream.response.headers)
                async for event in stream:
                    if event.type == "message_start" and on_started is not None:
                        on_started()
                message = await stream.get_final_message()
        usage = _usage(message)
        return Reply(_validate(message, output, max_tokens, usage), usage)

    async def converse(
        self,
        *,
        system: str,
        tools: Sequence[Mapping[str, Any]],
        messages: Sequence[Mapping[str, Any]],
        max_tokens: int,
        effort: Effort | None = None,
    ) -> AsyncIterator[ChatEvent]:
        """One attempt at a free-text answer, streamed: `ChatStarted`, then each `ChatText` delta as it
        arrives, then `ChatDone` with the whole text, the tool calls and the usage.

        Blocks are read by type (a thinking block comes first on Claude 5.x). Raises ModelCallError,
        possibly after some text was already yielded (the caller decides whether to retry).
        """
        output_config: dict[str, Any] = {}
        if effort is not None and self.takes_effort:
            output_config["effort"] = effort
        extra: dict[str, Any] = {"output_config": output_config} if output_config else {}
        if tools:
            extra["tools"] = list(tools)
        with self._mapped_errors():
            async with self._client.messages.stream(
                model=self.model,
                max_tokens=max_tokens,
                system=[TextBlockParam(type="text", text=system)],
                messages=list(messages),  # type: ignore[arg-type]  # TypedDicts built as dicts
                **extra,
            ) as stream:
                self._observe(stream.response.headers)
                async for event in stream:
                    if event.type == "message_start":
                        yield ChatStarted()
                    elif event.type == "content_block_delta" and event.delta.type == "text_delta" and event.delta.text:
                        yield ChatText(event.delta.text)
                message = await stream.get_final_message()
        usage = _usage(message)
        yield _chat_done(message, max_tokens, usage)

    @contextmanager
    def _mapped_errors(self) -> Iterator[None]:
        """API and transport errors as ModelCallErrors whose kind says whether a retry can help."""
        try:
            yield
        except anthropic.APITimeoutError:
            raise ModelCallError(
                CallFailure.TIMEOUT, f"Claude did not answer within the {self._timeout_text()} request timeout"
            ) from None
        except anthropic.APIConnectionError as error:
            cause = error.__cause__ or error
            raise ModelCallError(
                CallFailure.CONNECTION, f"could not reach Claude at {self.base_url} ({type(cause).__name__}: {cause})"
            ) from None
        except anthropic.APIStatusError as error:
            if error.response is not None and error.status_code >= 400:  # a mid-stream error's were seen at its start
                self._observe(error.response.headers)
            raise _status_failure(error, self.model) from None
        except httpx2.TimeoutException:  # a mid-stream read timeout is a TransportError too: catch it first
            raise ModelCallError(CallFailure.TIMEOUT, "Claude stalled mid-answer (read timed out)") from None
        except httpx2.TransportError:
            raise ModelCallError(CallFailure.DROPPED, "the connection to Claude dropped mid-answer") from None
        except json.JSONDecodeError:
            raise ModelCallError(CallFailure.DROPPED, "Claude's answer stream sent a chunk that is not JSON") from None

    def _timeout_text(self) -> str:
        return f"{self.request_timeout_s:g} s" if self.request_timeout_s is not None else "configured"


def structured_cost(
    *,
    system: str,
    images: Sequence[PreparedImage],
    shared_text: str,
    task_text: str,
    output: type[pydantic.BaseModel],
    max_tokens: int,
) -> CallCost:
    """What a `structured()` request may use of the per-minute limits (see matrec.budget)."""
    texts = (system, shared_text, task_text, json.dumps(_schema(output)))
    return call_cost(texts, images, max_tokens)


def chat_cost(
    *,
    system: str,
    tools: Sequence[Mapping[str, Any]],
    messages: Sequence[Mapping[str, Any]],
    images: Sequence[PreparedImage],
    max_tokens: int,
) -> CallCost:
    """What a `converse()` request may use of the per-minute limits; `images` are those its messages carry."""
    texts = [system, *(json.dumps(tool) for tool in tools)]
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
            continue
        for block in content if isinstance(content, list) else []:
            if isinstance(block, Mapping) and isinstance(block.get("text"), str):
                texts.append(block["text"])
    return call_cost(texts, images, max_tokens)


def _validate(message: Any, output: type[T], max_tokens: int, usage: TokenUsage) -> T:
    stop_reason = message.stop_reason
    if stop_reason == "refusal":
        raise ModelCallError(CallFailure.REFUSED, "Claude declined to assess this part", usage=usage)
    if stop_reason == "max_tokens":
        raise ModelCallError(
            CallFailure.TRUNCATED,
            f"Claude's answer was cut off at the {max_tokens:,}-token limit (thinking counts against it)",
            usage=usage,
        )
    if stop_reason is None:
        raise ModelCallError(CallFailure.DROPPED, "Claude's answer stopped before it was complete", usage=usage)
    text = "".join(block.text for block in message.content if block.type == "text")
    try:
        return output.model_validate_json(text)
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "answer"
        raise ModelCallError(
            CallFailure.INVALID_OUTPUT, f"Claude's answer did not fit the schema ({where}: {first['msg']})", usage=usage
        ) from None


def _chat_done(message: Any, max_tokens: int, usage: TokenUsage) -> ChatDone:
    stop_reason = message.stop_reason
    text = "".join(block.text for block in message.content if block.type == "text")
    calls = [ToolCall(block.name, dict(block.input)) for block in message.content if block.type == "tool_use"]
    if stop_reason == "refusal":
        raise ModelCallError(CallFailure.REFUSED, "Claude declined to answer this question", usage=usage)
    if stop_reason is None:
        raise ModelCallError(CallFailure.DROPPED, "Claude's answer stopped before it was complete", usage=usage)
    if stop_reason == "max_tokens" and not text:
        raise ModelCallError(
            CallFailure.TRUNCATED,
            f"Claude reached the {max_tokens:,}-token limit before answering (thinking counts against it)",
            usage=usage,
        )
    return ChatDone(text=text, tool_calls=calls, usage=usage, truncated=stop_reason == "max_tokens")


_SCHEMAS: dict[type[pydantic.BaseModel], dict[str, Any]] = {}


def _schema(output: type[pydantic.BaseModel]) -> dict[str, Any]:
    if output not in _SCHEMAS:
        _SCHEMAS[output] = anthropic.transform_schema(output)
    return _SCHEMAS[output]


def image_blocks(images: Sequence[PreparedImage]) -> list[Any]:
    """One base64 image block per photo, in order (images before text, as Anthropic advises)."""
    return [
        {"type": "image", "source": {"type": "base64", "media_type": image.media_type, "data": image.base64}}
        for image in images
    ]


def _messages(
    images: Sequence[PreparedImage], shared_text: str, task_text: str, cache_prefix: bool
) -> Sequence[MessageParam]:
    shared: list[Any] = image_blocks(images)
    if shared_text:
        shared.append({"type": "text", "text": shared_text})
    if cache_prefix and shared:
        shared[-1] = {**shared[-1], "cache_control": _EPHEMERAL}
    return [{"role": "user", "content": [*shared, {"type": "text", "text": task_text}]}]
