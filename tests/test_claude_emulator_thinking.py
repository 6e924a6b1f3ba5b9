"""Thinking in the Claude emulator, through the real `anthropic` SDK: blocks, max_tokens, seeds, timing."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anthropic
import pytest

from emulators.claude import ClaudeEmulator, RecordedRequest
from emulators.claude_thinking import adaptive_thinking_tokens
from emulators.claude_usage import TOKENIZER_5X
from tests.engine_support import emulator_process

KEY = "test-key"
MODEL = "claude-sonnet-5-5"
ROOMY_MAX_TOKENS = 64_000
HELLO: list[Any] = [{"role": "user", "content": "Hello"}]
HELLO_ANSWER = "Hello from the emulated Claude."
HELLO_ANSWER_TOKENS = TOKENIZER_5X.output_tokens(HELLO_ANSWER)
NON_STREAMED_MAX_TOKENS = 16_000  # the SDK insists on streaming above about 21,000
DRAWS = 2000
SEEDS_COMPARED = 12


@pytest.fixture
async def emulator() -> AsyncIterator[ClaudeEmulator]:
    async with ClaudeEmulator(api_key=KEY, thinking=True, seed=11) as claude:
        yield claude


@pytest.fixture
async def client(emulator: ClaudeEmulator) -> AsyncIterator[anthropic.AsyncAnthropic]:
    sdk = anthropic.AsyncAnthropic(api_key=KEY, base_url=emulator.base_url, max_retries=0, timeout=10.0)
    yield sdk
    await sdk.close()


async def _streamed(client: anthropic.AsyncAnthropic, **params: Any) -> tuple[list[str], anthropic.types.Message]:
    params = {"model": MODEL, "max_tokens": ROOMY_MAX_TOKENS, "messages": HELLO, **params}
    async with client.messages.stream(**params) as stream:
        events = [f"{e.type}:{getattr(e, 'index', '')}" async for e in stream]
        return events, await stream.get_final_message()


async def test_a_5x_model_thinks_by_default_and_the_thinking_block_comes_first(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic
) -> None:
    emulator.thinking_tokens = 700
    _, message = await _streamed(client)
    thinking, text = message.content
    assert thinking.type == "thinking" and text.type == "text"
    assert thinking.thinking == ""  # display "omitted" by default
    assert len(thinking.signature) > 100
    assert text.text == HELLO_ANSWER
    [record] = emulator.requests
    assert record.thinking_tokens == 700
    assert message.usage.output_tokens == record.output_tokens == 700 + HELLO_ANSWER_TOKENS
    assert message.usage.output_tokens_details is not None
    assert message.usage.output_tokens_details.thinking_tokens == 700


async def test_a_stream_sends_thinking_at_index_0_with_a_signature_then_the_text_at_index_1(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic
) -> None:
    emulator.thinking_tokens = 300
    events, _ = await _streamed(client)
    assert events[:6] == [
        "message_start:",
        "content_block_start:0",
        "content_block_delta:0",
        "signature:",
        "content_block_stop:0",
        "content_block_start:1",
    ]
    assert events[-2:] == ["message_delta:", "message_stop:"]


async def test_a_non_streamed_answer_has_the_same_two_blocks(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic
) -> None:
    emulator.thinking_tokens = 300
    message = await client.messages.create(model=MODEL, max_tokens=4096, messages=HELLO)
    assert [block.type for block in message.content] == ["thinking", "text"]


async def test_thinking_that_reaches_max_tokens_leaves_no_text_block(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic
) -> None:
    emulator.thinking_tokens = 5000
    _, message = await _streamed(client, max_tokens=2048)
    assert [block.type for block in message.content] == ["thinking"]
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 2048


async def test_thinking_plus_an_answer_over_max_tokens_cuts_the_answer_off(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic
) -> None:
    emulator.thinking_tokens = 2040
    _, message = await _streamed(client, max_tokens=2048)
    thinking, text = message.content
    assert thinking.type == "thinking"
    assert text.type == "text" and 0 < len(text.text) < len(HELLO_ANSWER)
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 2048


async def test_a_pinned_thinking_function_sees_each_request(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic
) -> None:
    def by_kind(record: RecordedRequest) -> int:
        return 0 if record.kind.material == "wood" else 900

    emulator.thinking_tokens = by_kind
    _, wood = await _streamed(client, messages=[{"role": "user", "content": "<material_class>wood</material_class>"}])
    _, metal = await _streamed(client, messages=[{"role": "user", "content": "<material_class>metal</material_class>"}])
    assert [block.type for block in wood.content] == ["text"]  # no thinking block when it did not think
    assert [block.type for block in metal.content] == ["thinking", "text"]


async def test_a_request_with_thinking_off_never_thinks_even_when_pinned(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic
) -> None:
    emulator.thinking_tokens = 900
    _, message = await _streamed(client, model="claude-sonnet-5", thinking={"type": "disabled"})
    assert [block.type for block in message.content] == ["text"]
    assert emulator.requests[0].thinking_tokens == 0


async def test_thinking_off_in_process_still_honours_a_pin() -> None:
    async with ClaudeEmulator(api_key=KEY, thinking=False, thinking_tokens=400) as claude:
        sdk = anthropic.AsyncAnthropic(api_key=KEY, base_url=claude.base_url, max_retries=0)
        _, pinned = await _streamed(sdk)
        claude.thinking_tokens = None
        _, unpinned = await _streamed(sdk)
        await sdk.close()
    assert [b.type for b in pinned.content] == ["thinking", "text"]
    assert [b.type for b in unpinned.content] == ["text"]


async def test_haiku_4_5_does_not_think_unless_given_a_budget(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic
) -> None:
    _, plain = await _streamed(client, model="claude-haiku-4-5", max_tokens=8000)
    _, budgeted = await _streamed(
        client, model="claude-haiku-4-5", max_tokens=8000, thinking={"type": "enabled", "budget_tokens": 2000}
    )
    assert [block.type for block in plain.content] == ["text"]
    assert [block.type for block in budgeted.content] == ["thinking", "text"]
    assert 0 < (emulator.requests[1].thinking_tokens or 0) <= 2000


async def test_summarized_display_returns_thinking_text(client: anthropic.AsyncAnthropic) -> None:
    _, message = await _streamed(client, thinking={"type": "adaptive", "display": "summarized"})
    thinking = message.content[0]
    assert thinking.type == "thinking" and thinking.thinking


async def _thinking_sequence(seed: int) -> list[int | None]:
    async with ClaudeEmulator(api_key=KEY, thinking=True, seed=seed) as claude:
        sdk = anthropic.AsyncAnthropic(api_key=KEY, base_url=claude.base_url, max_retries=0)
        for _ in range(SEEDS_COMPARED):
            await sdk.messages.create(model=MODEL, max_tokens=NON_STREAMED_MAX_TOKENS, messages=HELLO)
        await sdk.close()
        return [r.thinking_tokens for r in claude.requests]


async def test_the_same_seed_thinks_the_same_amounts_in_arrival_order() -> None:
    first, again, other = await asyncio.gather(_thinking_sequence(5), _thinking_sequence(5), _thinking_sequence(6))
    assert first == again
    assert first != other


def test_more_effort_thinks_more_with_a_heavy_tail() -> None:
    medians = {
        effort: statistics.median(adaptive_thinking_tokens(seed, effort) for seed in range(DRAWS))
        for effort in ("medium", "high", "xhigh", "max")
    }
    assert medians["medium"] < medians["high"] < medians["xhigh"] < medians["max"]
    high = sorted(adaptive_thinking_tokens(seed, "high") for seed in range(DRAWS))
    assert high[DRAWS * 99 // 100] > 5 * high[DRAWS // 2]


def test_low_effort_often_skips_thinking_and_high_effort_never_does() -> None:
    low = [adaptive_thinking_tokens(seed, "low") for seed in range(DRAWS)]
    high = [adaptive_thinking_tokens(seed, "high") for seed in range(DRAWS)]
    assert low.count(0) / DRAWS == pytest.approx(0.40, abs=0.05)
    assert high.count(0) == 0


async def test_generation_time_grows_with_the_output_tokens(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic
) -> None:
    emulator.latency_s, emulator.first_token_s, emulator.output_tokens_per_s = 0.1, 0.05, 4000.0
    emulator.thinking_tokens = 1000 - HELLO_ANSWER_TOKENS  # 1,000 output tokens: 0.25 s at 4,000 tokens/s
    started = time.monotonic()
    await _streamed(client)
    elapsed_s = time.monotonic() - started
    [record] = emulator.requests
    assert record.first_byte_s == 0.05
    assert record.service_s == pytest.approx(0.35)
    assert 0.35 <= elapsed_s < 0.6
    assert record.finished_at is not None and record.finished_at - record.arrived_at >= 0.35


async def test_stats_report_each_requests_model_effort_thinking_and_plan(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic
) -> None:
    emulator.thinking_tokens = 50
    await client.messages.create(model="claude-opus-5-5", max_tokens=4096, messages=HELLO)
    async with aiohttp.ClientSession() as session, session.get(f"{emulator.base_url}/_emulator/stats") as got:
        [entry] = (await got.json())["timeline"]
    assert {key: entry[key] for key in ("model", "effort", "thinking_tokens", "output_tokens", "stop_reason")} == {
        "model": "claude-opus-5-5",
        "effort": "medium",
        "thinking_tokens": 50,
        "output_tokens": 50 + HELLO_ANSWER_TOKENS,
        "stop_reason": "end_turn",
    }
    assert entry["first_byte_s"] == 0.0 and entry["service_s"] == 0.0
    assert entry["arrived_at"] <= entry["started_at"] <= entry["finished_at"]


async def test_the_command_line_emulator_takes_a_seed_and_a_generation_speed() -> None:
    async with emulator_process("--latency-s", "0", "--seed", "3", "--output-tokens-per-s", "100000") as base_url:
        sdk = anthropic.AsyncAnthropic(api_key=KEY, base_url=base_url, max_retries=0)
        await sdk.messages.create(model=MODEL, max_tokens=NON_STREAMED_MAX_TOKENS, messages=HELLO)
        await sdk.close()
        async with aiohttp.ClientSession() as session, session.get(f"{base_url}/_emulator/stats") as got:
            [entry] = (await got.json())["timeline"]
    assert entry["thinking_tokens"] == (await _thinking_sequence(3))[0]  # thinks by default, seeded
    assert entry["service_s"] == pytest.approx(entry["output_tokens"] / 100_000)
