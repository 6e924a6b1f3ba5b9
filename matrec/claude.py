"""The one adapter to Claude: structured answers over a stream, errors mapped to ours.

Every call streams, so the engine learns when a response starts (the moment a cached prefix
becomes readable by other requests) and can time the first token. The answer is validated here
against the requested pydantic model; refusals, truncation and invalid JSON become
`ModelCallError`s with a readable reason, as do API errors left after the SDK's own retries.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import anthropic
import httpx2
import pydantic
from anthropic.types import MessageParam, TextBlockParam

from matrec.errors import CallFailure, ConfigError, ModelCallError
from matrec.images import PreparedImage
from matrec.results import TokenUsage
from matrec.settings import EngineSettings

T = TypeVar("T", bound=pydantic.BaseModel)

_EPHEMERAL: dict[str, str] = {"type": "ephemeral"}
_OVERLOADED_STATUS = 529
_HTTP_TOO_MANY_REQUESTS = 429


@dataclass(frozen=True)
class Reply(Generic[T]):
    """A validated answer and what it cost."""

    value: T
    usage: TokenUsage
    elapsed_s: float
    first_token_s: float


class _SpendLimitReachedError(Exception):
    """A 429 without retry-after: a spend or usage limit, which retrying cannot fix."""


class _NoRetryOnSpendLimit(anthropic.Middleware):
    """Stops the SDK from retrying spend-limit 429s (it retries every 429 otherwise)."""

    async def handle_async(self, request: Any, call_next: Any) -> Any:
        response = await call_next(request)
        status = response.status_code
        headers = response.headers
        if status == _HTTP_TOO_MANY_REQUESTS and "retry-after" not in headers and "retry-after-ms" not in headers:
            await response.http_response.aclose()  # else its connection never returns to the pool
            raise _SpendLimitReachedError
        return response


def _usage(message: Any) -> TokenUsage:
    usage = message.usage
    return TokenUsage(
        input_tokens=usage.input_tokens or 0,
        output_tokens=usage.output_tokens or 0,
        cache_write_tokens=usage.cache_creation_input_tokens or 0,
        cache_read_tokens=usage.cache_read_input_tokens or 0,
    )


def _status_failure(error: anthropic.APIStatusError) -> ModelCallError:
    status = error.status_code
    body = error.body if isinstance(error.body, dict) else {}
    detail = body.get("error", {}) if isinstance(body.get("error"), dict) else {}
    error_type = str(detail.get("type", ""))
    if status == _OVERLOADED_STATUS or error_type == "overloaded_error":
        return ModelCallError(CallFailure.OVERLOADED, "Claude is overloaded right now (529), even after retries")
    if isinstance(error, anthropic.RateLimitError):
        return ModelCallError(CallFailure.RATE_LIMITED, "Claude's rate limit was still hit after retries (429)")
    if isinstance(error, anthropic.AuthenticationError | anthropic.PermissionDeniedError):
        return ModelCallError(CallFailure.AUTH, f"Claude rejected the API key ({status})")
    if status >= 500:
        return ModelCallError(CallFailure.SERVER_ERROR, f"Claude had a server error ({status}), even after retries")
    return ModelCallError(CallFailure.BAD_REQUEST, f"Claude rejected the request ({status}): {error.message}")


class Claude:
    """Structured calls to one Claude model through a shared AsyncAnthropic client."""

    def __init__(self, client: anthropic.AsyncAnthropic, model: str) -> None:
        self._client = client
        self.model = model

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
            max_retries=settings.max_retries,
            middleware=[_NoRetryOnSpendLimit()],
        )
        return cls(client, settings.model)

    async def aclose(self) -> None:
        """Release the HTTP connections."""
        await self._client.close()

    async def structured(
        self,
        *,
        system: str,
        image: PreparedImage | None,
        shared_text: str,
        task_text: str,
        output: type[T],
        max_tokens: int,
        cache_prefix: bool,
        on_started: Callable[[], None] | None = None,
    ) -> Reply[T]:
        """Ask for an answer of type `output`; the prefix (system, image, shared_text) is cacheable."""
        messages = _messages(image, shared_text, task_text, cache_prefix)
        started = time.perf_counter()
        first_token_s = 0.0
        try:
            async with self._client.messages.stream(
                model=self.model,
                max_tokens=max_tokens,
                system=[TextBlockParam(type="text", text=system)],
                messages=messages,
                output_config={"format": {"type": "json_schema", "schema": _schema(output)}},
            ) as stream:
                async for event in stream:
                    if event.type == "message_start":
                        first_token_s = time.perf_counter() - started
                        if on_started is not None:
                            on_started()
                message = await stream.get_final_message()
        except _SpendLimitReachedError:
            raise ModelCallError(
                CallFailure.SPEND_LIMIT, "the Anthropic account's spend limit is reached; not retried"
            ) from None
        except anthropic.APITimeoutError:
            raise ModelCallError(CallFailure.TIMEOUT, "Claude did not answer in time, even after retries") from None
        except anthropic.APIConnectionError:
            raise ModelCallError(CallFailure.CONNECTION, "could not reach Claude (connection failed)") from None
        except anthropic.APIStatusError as error:
            raise _status_failure(error) from None
        except httpx2.TimeoutException:  # a mid-stream read timeout is a TransportError too: catch it first
            raise ModelCallError(CallFailure.TIMEOUT, "Claude stalled mid-answer (read timed out)") from None
        except httpx2.TransportError:
            raise ModelCallError(CallFailure.CONNECTION, "the connection to Claude dropped mid-answer") from None
        elapsed_s = time.perf_counter() - started
        usage = _usage(message)
        return Reply(_validate(message, output), usage, elapsed_s, first_token_s)


def _validate(message: Any, output: type[T]) -> T:
    stop_reason = message.stop_reason
    if stop_reason == "refusal":
        raise ModelCallError(CallFailure.REFUSED, "Claude declined to assess this part")
    if stop_reason == "max_tokens":
        raise ModelCallError(CallFailure.TRUNCATED, "Claude's answer was cut off at the token limit")
    if stop_reason is None:
        raise ModelCallError(CallFailure.CONNECTION, "Claude's answer stopped before it was complete")
    text = "".join(block.text for block in message.content if block.type == "text")
    try:
        return output.model_validate_json(text)
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "answer"
        raise ModelCallError(
            CallFailure.INVALID_OUTPUT, f"Claude's answer did not fit the schema ({where}: {first['msg']})"
        ) from None


_SCHEMAS: dict[type[pydantic.BaseModel], dict[str, Any]] = {}


def _schema(output: type[pydantic.BaseModel]) -> dict[str, Any]:
    if output not in _SCHEMAS:
        _SCHEMAS[output] = anthropic.transform_schema(output)
    return _SCHEMAS[output]


def _messages(
    image: PreparedImage | None, shared_text: str, task_text: str, cache_prefix: bool
) -> Sequence[MessageParam]:
    shared: list[Any] = []
    if image is not None:
        shared.append(
            {
                "type": "image",
                "source": {"type": "base64", "media_type": image.media_type, "data": image.base64},
            }
        )
    if shared_text:
        shared.append({"type": "text", "text": shared_text})
    if cache_prefix and shared:
        shared[-1] = {**shared[-1], "cache_control": _EPHEMERAL}
    return [{"role": "user", "content": [*shared, {"type": "text", "text": task_text}]}]
