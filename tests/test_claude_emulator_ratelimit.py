"""The Claude emulator's organisation-wide rate limits, as the real `anthropic` SDK meets them.

What each test expects comes from Anthropic's "Rate limits" page (see `emulators.claude_ratelimit`):
token buckets refilled continuously, cache reads not counted toward ITPM, output reserved at
`max_tokens` and settled at the end, token `-remaining` rounded to the nearest thousand, `tokens-*`
the sum of input and output, -reset in RFC 3339, a 429 with `retry-after`. Time is a test clock.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anthropic
import pytest

from bench.claude_process import KEY as BENCH_KEY
from bench.claude_process import claude_process
from emulators.claude import ClaudeEmulator, Fault, OrgLimits
from tests.engine_support import emulator_process

KEY = "test-key"
MODEL = "claude-sonnet-5-5"
SAME_CLASS_MODEL = "claude-sonnet-5"  # Sonnet 5 and 5.5 share one rate-limit class
OTHER_CLASS_MODEL = "claude-opus-5-5"
T0 = datetime(2026, 12, 1, 5, 0, 0, tzinfo=UTC).timestamp()
HELLO: list[Any] = [{"role": "user", "content": "hello"}]
LONG_TEXT = "A die-cast bracket holding a pump to a wall, seen from the left. " * 500  # about 10k tokens
REPO_ROOT = Path(__file__).resolve().parents[1]


class ManualClock:
    """Epoch seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def emulator() -> AsyncIterator[ClaudeEmulator]:
    async with ClaudeEmulator(api_key=KEY, thinking=False) as claude:
        yield claude


@pytest.fixture
async def client(emulator: ClaudeEmulator) -> AsyncIterator[anthropic.AsyncAnthropic]:
    sdk = anthropic.AsyncAnthropic(api_key=KEY, base_url=emulator.base_url, max_retries=0, timeout=5.0)
    yield sdk
    await sdk.close()


@pytest.fixture
async def other_client(emulator: ClaudeEmulator) -> AsyncIterator[anthropic.AsyncAnthropic]:
    """A second instance of the bot: its own SDK client and connections, the same organisation."""
    sdk = anthropic.AsyncAnthropic(api_key=KEY, base_url=emulator.base_url, max_retries=0, timeout=5.0)
    yield sdk
    await sdk.close()


async def _create(
    client: anthropic.AsyncAnthropic, *, model: str = MODEL, max_tokens: int = 1024, **params: Any
) -> tuple[Mapping[str, str], anthropic.types.Message]:
    params.setdefault("messages", HELLO)
    raw = await client.messages.with_raw_response.create(model=model, max_tokens=max_tokens, **params)
    return raw.headers, await raw.parse()


async def _refused(client: anthropic.AsyncAnthropic, **params: Any) -> anthropic.RateLimitError:
    with pytest.raises(anthropic.RateLimitError) as caught:
        await _create(client, **params)
    return caught.value


def _counted_input(message: anthropic.types.Message) -> int:
    """What the docs count toward ITPM: input_tokens + cache_creation_input_tokens."""
    return message.usage.input_tokens + (message.usage.cache_creation_input_tokens or 0)


def _thousand(tokens: float) -> str:
    """The docs' "rounded to the nearest thousand"."""
    return str(math.floor(tokens / 1000 + 0.5) * 1000)


def _reset(headers: Mapping[str, str], name: str) -> float:
    value = headers[f"anthropic-ratelimit-{name}-reset"]
    assert value.endswith("Z")
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() is not None and parsed.utcoffset() == UTC.utcoffset(None)
    return parsed.timestamp()


def _ratelimit_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower().startswith("anthropic-ratelimit-")}


# --- headers --------------------------------------------------------------------------------------


async def test_headers_report_each_limit_and_remaining_falls_with_each_request(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic, clock: ManualClock
) -> None:
    emulator.org_limits(
        requests_per_minute=10, input_tokens_per_minute=100_000, output_tokens_per_minute=50_000, clock=clock
    )
    first, one = await _create(client, messages=[{"role": "user", "content": LONG_TEXT}])
    second, two = await _create(client, messages=[{"role": "user", "content": LONG_TEXT}])
    assert _counted_input(one) > 5000  # big enough to show through the rounding
    assert (first["anthropic-ratelimit-requests-limit"], first["anthropic-ratelimit-requests-remaining"]) == ("10", "9")
    assert second["anthropic-ratelimit-requests-remaining"] == "8"
    assert first["anthropic-ratelimit-input-tokens-limit"] == "100000"
    assert first["anthropic-ratelimit-input-tokens-remaining"] == _thousand(100_000 - _counted_input(one))
    used_input = _counted_input(one) + _counted_input(two)
    assert second["anthropic-ratelimit-input-tokens-remaining"] == _thousand(100_000 - used_input)
    assert int(second["anthropic-ratelimit-input-tokens-remaining"]) < int(
        first["anthropic-ratelimit-input-tokens-remaining"]
    )
    used_output = one.usage.output_tokens + two.usage.output_tokens
    assert second["anthropic-ratelimit-output-tokens-limit"] == "50000"
    assert second["anthropic-ratelimit-output-tokens-remaining"] == _thousand(50_000 - used_output)
    # continuously replenished: full again once the used share has flowed back in, at limit/60 per second
    assert _reset(second, "requests") == T0 + 2 * 60 / 10
    assert _reset(second, "input-tokens") == T0 + math.ceil(used_input / (100_000 / 60))
    assert _reset(second, "output-tokens") == T0 + math.ceil(used_output / (50_000 / 60))


async def test_tokens_headers_are_the_sum_of_input_and_output_when_no_workspace_limit_applies(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic, clock: ManualClock
) -> None:
    emulator.org_limits(input_tokens_per_minute=100_000, output_tokens_per_minute=20_000, clock=clock)
    headers, message = await _create(client, messages=[{"role": "user", "content": LONG_TEXT}])
    used = _counted_input(message) + message.usage.output_tokens
    assert headers["anthropic-ratelimit-tokens-limit"] == "120000"
    assert headers["anthropic-ratelimit-tokens-remaining"] == _thousand(120_000 - used)
    assert _reset(headers, "tokens") == max(_reset(headers, "input-tokens"), _reset(headers, "output-tokens"))
    assert "anthropic-ratelimit-requests-limit" not in headers  # only the limits configured are reported


async def test_a_streamed_response_carries_the_headers_with_the_output_still_reserved(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic, clock: ManualClock
) -> None:
    emulator.org_limits(output_tokens_per_minute=10_000, clock=clock)
    async with client.messages.stream(model=MODEL, max_tokens=8000, messages=HELLO) as stream:
        headers = stream.response.headers
        await stream.get_final_message()
    assert headers["anthropic-ratelimit-output-tokens-remaining"] == "2000"


async def test_error_responses_carry_the_headers_too(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic, clock: ManualClock
) -> None:
    emulator.org_limits(requests_per_minute=10, clock=clock)
    emulator.fail(Fault.OVERLOADED)
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        await _create(client)
    with pytest.raises(anthropic.BadRequestError) as bad:
        await _create(client, extra_body={"temperature": 0.5})  # 5.x rejects sampling parameters
    assert overloaded.value.response.headers["anthropic-ratelimit-requests-remaining"] == "9"  # it was admitted
    assert bad.value.response.headers["anthropic-ratelimit-requests-remaining"] == "9"  # refused before admission


async def test_without_limits_there_are_no_headers_and_no_429(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic
) -> None:
    for _ in range(5):
        headers, _message = await _create(client, max_tokens=64_000)
        assert _ratelimit_headers(headers) == {}
    assert emulator.rate_limited == {}
    assert emulator.stats()["rate_limited"] == {}


# --- what counts ----------------------------------------------------------------------------------


async def test_cache_reads_do_not_count_toward_input_tokens_per_minute(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic, clock: ManualClock
) -> None:
    emulator.org_limits(input_tokens_per_minute=100_000, clock=clock)
    system: Any = [{"type": "text", "text": LONG_TEXT, "cache_control": {"type": "ephemeral"}}]
    first, writer = await _create(client, system=system)
    second, reader = await _create(client, system=system)
    assert (writer.usage.cache_creation_input_tokens or 0) > 5000  # a write counts
    assert first["anthropic-ratelimit-input-tokens-remaining"] == _thousand(100_000 - _counted_input(writer))
    assert (reader.usage.cache_read_input_tokens or 0) > 5000  # a read does not
    assert second["anthropic-ratelimit-input-tokens-remaining"] == first["anthropic-ratelimit-input-tokens-remaining"]


async def test_output_is_reserved_at_max_tokens_and_settled_to_the_actual_output(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic, clock: ManualClock
) -> None:
    emulator.org_limits(output_tokens_per_minute=10_000, clock=clock)
    first, one = await _create(client, max_tokens=8000)
    second, two = await _create(client, max_tokens=8000)  # fits only because the first gave back its unused 7,9xx
    assert one.usage.output_tokens < 100
    assert first["anthropic-ratelimit-output-tokens-remaining"] == _thousand(10_000 - one.usage.output_tokens)
    used = one.usage.output_tokens + two.usage.output_tokens
    assert second["anthropic-ratelimit-output-tokens-remaining"] == _thousand(10_000 - used)


async def test_a_request_in_flight_holds_its_max_tokens_against_another_instance(
    emulator: ClaudeEmulator,
    client: anthropic.AsyncAnthropic,
    other_client: anthropic.AsyncAnthropic,
    clock: ManualClock,
) -> None:
    emulator.org_limits(output_tokens_per_minute=10_000, clock=clock)
    emulator.latency_s, emulator.first_token_s = 30.0, 0.0  # message_start at once, the rest much later
    async with client.messages.stream(model=MODEL, max_tokens=8000, messages=HELLO) as stream:
        assert stream.response.headers["anthropic-ratelimit-output-tokens-remaining"] == "2000"
        refused = await _refused(other_client, max_tokens=8000)
    # 6,000 more output tokens at 10,000 a minute: 36 s
    assert refused.response.headers["retry-after"] == "36"
    assert "10,000 output tokens per minute" in refused.message
    assert emulator.rate_limited == {"output_tokens": 1}


# --- over the limit -------------------------------------------------------------------------------


async def test_a_request_over_the_limit_gets_a_429_with_retry_after_and_the_headers(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic, clock: ManualClock
) -> None:
    emulator.org_limits(requests_per_minute=2, clock=clock)
    await _create(client)
    await _create(client)
    refused = await _refused(client)
    body: Any = refused.body
    assert refused.status_code == 429
    assert body["error"]["type"] == "rate_limit_error"
    assert "rate limit of 2 requests per minute" in body["error"]["message"]
    headers = refused.response.headers
    assert headers["retry-after"] == "30"  # one request flows back every 30 s
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert _reset(headers, "requests") == T0 + 60
    assert emulator.rate_limited == {"requests": 1}
    assert emulator.stats()["rate_limited"] == {"requests": 1}
    assert [r.status for r in emulator.requests] == [200, 200, 429]


async def test_a_request_larger_than_the_whole_limit_is_refused(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic, clock: ManualClock
) -> None:
    emulator.org_limits(output_tokens_per_minute=10_000, clock=clock)
    refused = await _refused(client, max_tokens=12_000)
    assert refused.response.headers["retry-after"] == "1"  # the bucket is full: it will never fit
    assert emulator.rate_limited == {"output_tokens": 1}


async def test_two_clients_share_one_organisation_limit(
    emulator: ClaudeEmulator,
    client: anthropic.AsyncAnthropic,
    other_client: anthropic.AsyncAnthropic,
    clock: ManualClock,
) -> None:
    emulator.org_limits(requests_per_minute=3, clock=clock)
    await _create(client)
    await _create(other_client)
    await _create(client)
    refused = await _refused(other_client)  # its second request, the organisation's fourth
    assert refused.response.headers["retry-after"] == "20"
    assert emulator.rate_limited == {"requests": 1}


async def test_models_of_one_class_share_a_limit_and_other_classes_have_their_own(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic, clock: ManualClock
) -> None:
    emulator.org_limits(requests_per_minute=1, clock=clock)
    await _create(client, model=MODEL)
    await _refused(client, model=SAME_CLASS_MODEL)
    headers, _message = await _create(client, model=OTHER_CLASS_MODEL)
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"


async def test_buckets_refill_continuously_not_at_fixed_intervals(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic, clock: ManualClock
) -> None:
    emulator.org_limits(requests_per_minute=3, clock=clock)
    for _ in range(3):
        await _create(client)
    assert (await _refused(client)).response.headers["retry-after"] == "20"
    clock.now += 19.5
    assert (await _refused(client)).response.headers["retry-after"] == "1"  # ceil of the half second left
    clock.now += 0.5
    headers, _message = await _create(client)  # one request has flowed back, not the whole minute
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    await _refused(client)
    clock.now += 600
    headers, _message = await _create(client)
    assert headers["anthropic-ratelimit-requests-remaining"] == "2"  # full (3) minus this one, never more
    assert emulator.rate_limited == {"requests": 3}


async def test_reset_stats_forgets_the_429_counts(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic, clock: ManualClock
) -> None:
    emulator.org_limits(requests_per_minute=1, clock=clock)
    await _create(client)
    await _refused(client)
    emulator.reset_stats()
    assert emulator.rate_limited == {}


# --- as its own process ---------------------------------------------------------------------------


async def test_the_command_line_emulator_takes_the_organisation_limits() -> None:
    limits = ("--requests-per-minute", "1", "--input-tokens-per-minute", "50000", "--output-tokens-per-minute", "20000")
    async with emulator_process("--latency-s", "0", "--no-thinking", *limits) as base_url:
        sdk = anthropic.AsyncAnthropic(api_key=KEY, base_url=base_url, max_retries=0)
        headers, _message = await _create(sdk)
        refused = await _refused(sdk)
        await sdk.close()
    assert headers["anthropic-ratelimit-input-tokens-limit"] == "50000"
    assert headers["anthropic-ratelimit-tokens-limit"] == "70000"
    assert 58 <= int(refused.response.headers["retry-after"]) <= 60  # a minute for one request, on the wall clock


async def test_the_benchmark_process_shares_its_limits_with_every_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))  # the child runs `-m bench.claude_process` from a temp dir
    async with claude_process(latency_s=0.0, first_token_s=0.0, limits=OrgLimits(requests_per_minute=1)) as claude:
        first = anthropic.AsyncAnthropic(api_key=BENCH_KEY, base_url=claude.base_url, max_retries=0)
        second = anthropic.AsyncAnthropic(api_key=BENCH_KEY, base_url=claude.base_url, max_retries=0)
        headers, _message = await _create(first)
        refused = await _refused(second)
        await first.close()
        await second.close()
    assert headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert refused.status_code == 429
