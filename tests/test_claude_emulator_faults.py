"""The Claude emulator's newer faults, as the real `anthropic` SDK meets them on the wire."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2
import pytest

from emulators.claude import ClaudeEmulator, Fault

KEY = "test-key"
MODEL = "claude-sonnet-5-5"
MAX_TOKENS = 4096
FAST_RETRY_S = 0.01
LONG_TEXT: list[Any] = [{"role": "user", "content": "<material_class>metal</material_class>"}]


async def _stream_events(client: anthropic.AsyncAnthropic, seen: list[str]) -> None:
    async with client.messages.stream(model=MODEL, max_tokens=MAX_TOKENS, messages=LONG_TEXT) as stream:
        async for event in stream:
            seen.append(event.type)


@pytest.fixture
async def emulator() -> AsyncIterator[ClaudeEmulator]:
    async with ClaudeEmulator(api_key=KEY) as claude:
        yield claude


@pytest.fixture
async def client(emulator: ClaudeEmulator) -> AsyncIterator[anthropic.AsyncAnthropic]:
    sdk = anthropic.AsyncAnthropic(api_key=KEY, base_url=emulator.base_url, max_retries=2, timeout=5.0)
    yield sdk
    await sdk.close()


async def test_a_malformed_chunk_mid_stream_raises_json_decode_error_from_the_stream(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic
) -> None:
    emulator.fail(Fault.MALFORMED_CHUNK)
    seen: list[str] = []
    with pytest.raises(json.JSONDecodeError):
        await _stream_events(client, seen)
    assert seen[0] == "message_start" and "content_block_delta" in seen
    assert [r.status for r in emulator.requests] == [200]  # a 200 that broke: not retried


async def test_a_malformed_chunk_after_thinking_breaks_the_stream_before_any_text(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic
) -> None:
    emulator.thinking_tokens = MAX_TOKENS  # thinking uses up max_tokens: no text block follows
    emulator.fail(Fault.MALFORMED_CHUNK)
    seen: list[str] = []
    with pytest.raises(json.JSONDecodeError):
        await _stream_events(client, seen)
    assert "text" not in seen and seen[-1] == "content_block_stop"


async def test_a_malformed_chunk_without_streaming_is_a_cut_off_json_body(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic
) -> None:
    emulator.fail(Fault.MALFORMED_CHUNK)
    with pytest.raises(json.JSONDecodeError):
        await client.messages.create(model=MODEL, max_tokens=MAX_TOKENS, messages=LONG_TEXT)


async def test_a_drop_midstream_after_thinking_ends_the_connection(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic
) -> None:
    emulator.thinking_tokens = 200
    emulator.fail(Fault.DROP_MIDSTREAM)
    with pytest.raises((httpx2.TransportError, anthropic.APIConnectionError)):
        async with client.messages.stream(model=MODEL, max_tokens=MAX_TOKENS, messages=LONG_TEXT) as stream:
            await stream.get_final_message()
    assert emulator.requests[0].status is None


async def test_one_service_unavailable_is_a_503_the_sdk_retries(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic
) -> None:
    emulator.fail(Fault.SERVICE_UNAVAILABLE, retry_after_s=FAST_RETRY_S)
    message = await client.messages.create(model=MODEL, max_tokens=MAX_TOKENS, messages=LONG_TEXT)
    assert message.stop_reason == "end_turn"
    assert [r.status for r in emulator.requests] == [503, 200]


async def test_service_unavailable_every_time_is_an_internal_server_error_with_the_api_shape(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic
) -> None:
    emulator.fail(Fault.SERVICE_UNAVAILABLE, times=None, retry_after_s=FAST_RETRY_S)
    with pytest.raises(anthropic.InternalServerError) as caught:
        await client.messages.create(model=MODEL, max_tokens=MAX_TOKENS, messages=LONG_TEXT)
    assert caught.value.status_code == 503
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "api_error", "message": "Service unavailable"},
        "request_id": caught.value.request_id,
    }
    assert len(emulator.requests) == 3


async def test_an_overload_carries_the_retry_after_it_was_given(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic
) -> None:
    emulator.fail(Fault.OVERLOADED, retry_after_s=1.5)
    with pytest.raises(anthropic.APIStatusError) as caught:
        await client.with_options(max_retries=0).messages.create(model=MODEL, max_tokens=MAX_TOKENS, messages=LONG_TEXT)
    assert caught.value.status_code == 529
    assert (caught.value.response.headers["retry-after"], caught.value.response.headers["retry-after-ms"]) == (
        "2",
        "1500",
    )


async def test_an_overload_without_a_retry_after_sends_none(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic
) -> None:
    emulator.fail(Fault.OVERLOADED)
    with pytest.raises(anthropic.APIStatusError) as caught:
        await client.with_options(max_retries=0).messages.create(model=MODEL, max_tokens=MAX_TOKENS, messages=LONG_TEXT)
    assert "retry-after" not in caught.value.response.headers
