"""The Claude emulator, driven by the real `anthropic` SDK, and `matrec.claude`'s error mapping on it."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import anthropic
import pytest
from PIL import Image

from emulators.claude import ClaudeEmulator, Fault, RecordedRequest, RequestKind, request_kind
from matrec.claude import Claude, Reply
from matrec.errors import CallFailure, ModelCallError
from matrec.images import PreparedImage
from matrec.schema import AggregateVerdict, BranchAnalysis
from matrec.settings import EngineSettings

KEY = "test-key"
MODEL = "claude-sonnet-5-5"
FORCED_TOOL_MODEL = "claude-sonnet-5"  # Sonnet 5.5 rejects forced tool_choice
HIGH_MINIMUM_CACHE_MODEL = "claude-haiku-4-5"  # caches prefixes of 4,096 tokens and up
FAST_RETRY_S = 0.01
LONG_SHARED_TEXT = "<part_context>\n" + "A die-cast bracket holding a pump to a wall. " * 120 + "\n</part_context>"


@pytest.fixture
async def emulator() -> AsyncIterator[ClaudeEmulator]:
    # the wire format and the adapter's mapping; thinking is covered in test_claude_emulator_thinking.py
    async with ClaudeEmulator(api_key=KEY, thinking=False) as claude:
        yield claude


@pytest.fixture
async def client(emulator: ClaudeEmulator) -> AsyncIterator[anthropic.AsyncAnthropic]:
    sdk = anthropic.AsyncAnthropic(api_key=KEY, base_url=emulator.base_url, max_retries=2, timeout=5.0)
    yield sdk
    await sdk.close()


def _adapter(
    emulator: ClaudeEmulator, *, key: str = KEY, timeout_s: float = 5.0, max_retries: int = 2, model: str = MODEL
) -> Claude:
    settings = EngineSettings(
        anthropic_api_key=key,
        anthropic_base_url=emulator.base_url,
        request_timeout_s=timeout_s,
        max_retries=max_retries,
        model=model,
    )
    return Claude.from_settings(settings)


@pytest.fixture
async def claude(emulator: ClaudeEmulator) -> AsyncIterator[Claude]:
    adapter = _adapter(emulator)
    yield adapter
    await adapter.aclose()


async def _branch(
    claude: Claude,
    material: str = "metal",
    *,
    image: PreparedImage | None = None,
    shared_text: str = "<part_context>a small bracket</part_context>",
    cache_prefix: bool = False,
    on_started: Callable[[], None] | None = None,
) -> Reply[BranchAnalysis]:
    return await claude.structured(
        system="You are a materials engineer.",
        images=() if image is None else (image,),
        shared_text=shared_text,
        task_text=f"<task>branch</task>\n<material_class>{material}</material_class>\nScore: strength, cost.",
        output=BranchAnalysis,
        max_tokens=2048,
        cache_prefix=cache_prefix,
        on_started=on_started,
    )


def _prepared(data: bytes, media_type: Any, size: tuple[int, int]) -> PreparedImage:
    return PreparedImage(
        media_type=media_type,
        base64=base64.b64encode(data).decode(),
        width=size[0],
        height=size[1],
        original_format="jpeg",
        original_width=size[0],
        original_height=size[1],
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _encoded(size: tuple[int, int], image_format: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (120, 130, 140)).save(buffer, format=image_format)
    return buffer.getvalue()


def _schema(model: type[Any]) -> dict[str, Any]:
    return anthropic.transform_schema(model)


# --- the emulator through the SDK --------------------------------------------------------------


async def test_plain_create_gets_a_text_answer_and_is_recorded(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic
) -> None:
    message = await client.messages.create(model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "Hello"}])
    assert message.stop_reason == "end_turn"
    assert message.content[0].type == "text"
    assert message.content[0].text
    assert message.usage.input_tokens == 2
    assert message.usage.output_tokens > 0
    [record] = emulator.requests
    assert record.status == 200
    assert record.kind == RequestKind("generic")
    assert record.headers["authorization"] == f"Bearer {KEY}"
    assert record.headers["anthropic-version"]


async def test_streamed_branch_answer_fits_the_schema_with_the_scripted_score(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic
) -> None:
    emulator.scores["ceramic"] = 9
    events: list[str] = []
    async with client.messages.stream(
        model=MODEL,
        max_tokens=2048,
        messages=[{"role": "user", "content": "<material_class>ceramic</material_class>"}],
        output_config={"format": {"type": "json_schema", "schema": _schema(BranchAnalysis)}},
    ) as stream:
        async for event in stream:
            events.append(event.type)
        message = await stream.get_final_message()
    assert events[0] == "message_start"
    assert events[-1] == "message_stop"
    assert events.count("content_block_delta") > 1
    analysis = BranchAnalysis.model_validate_json(message.content[0].text)  # type: ignore[union-attr]
    assert analysis.suitability == 9
    assert analysis.recommended
    assert analysis.hard_screen is None
    assert analysis.dimensions.cost == 9
    assert message.usage.output_tokens == emulator.requests[0].usage["output_tokens"]  # type: ignore[index]


async def test_parse_of_an_aggregate_ranks_only_the_classes_present(client: anthropic.AsyncAnthropic) -> None:
    text = (
        "<task>aggregate</task>\n"
        '<analysis material="ceramic">{}</analysis>\n'
        '<analysis material="wood" condition="wet">{}</analysis>\n'
        '<analysis material="polymer">{}</analysis>'
    )
    message = await client.messages.parse(
        model=MODEL,
        max_tokens=2048,
        messages=[{"role": "user", "content": text}],
        output_format=AggregateVerdict,
    )
    verdict = message.parsed_output
    assert verdict is not None
    assert (verdict.best, verdict.runner_up) == ("polymer", "ceramic")
    assert verdict.confidence == "high"
    assert {(s.material.value, s.score) for s in verdict.scores} == {
        ("polymer", 7),
        ("ceramic", 4),
        ("wood", 2),
    }
    assert [s.material.value for s in verdict.screened_out] == ["wood"]
    assert "polymer" in verdict.rationale
    assert "ceramic" in verdict.rationale


async def test_a_forced_tool_is_answered_with_tool_use(client: anthropic.AsyncAnthropic) -> None:
    message = await client.messages.create(
        model=FORCED_TOOL_MODEL,
        max_tokens=2048,
        messages=[{"role": "user", "content": "<material_class>wood</material_class>"}],
        tools=[{"name": "report", "description": "Report the analysis", "input_schema": _schema(BranchAnalysis)}],
        tool_choice={"type": "tool", "name": "report"},
    )
    assert message.stop_reason == "tool_use"
    block = message.content[0]
    assert block.type == "tool_use"
    assert block.name == "report"
    analysis = BranchAnalysis.model_validate(block.input)
    assert analysis.suitability == 2
    assert not analysis.recommended
    assert analysis.hard_screen


async def test_a_streamed_forced_tool_call_arrives_as_input_json(client: anthropic.AsyncAnthropic) -> None:
    async with client.messages.stream(
        model=FORCED_TOOL_MODEL,
        max_tokens=2048,
        messages=[{"role": "user", "content": "<material_class>metal</material_class>"}],
        tools=[{"name": "report", "input_schema": _schema(BranchAnalysis)}],
        tool_choice={"type": "tool", "name": "report"},
    ) as stream:
        message = await stream.get_final_message()
    block = message.content[0]
    assert block.type == "tool_use"
    assert BranchAnalysis.model_validate(block.input).suitability == 8


async def test_a_rate_limit_with_retry_after_is_retried_by_the_sdk(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic
) -> None:
    emulator.fail(Fault.RATE_LIMITED)
    raw = await client.messages.with_raw_response.create(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "Hello"}]
    )
    assert raw.status_code == 200
    assert [r.status for r in emulator.requests] == [429, 200]
    assert emulator.requests[0].fault is Fault.RATE_LIMITED


async def test_error_bodies_have_the_api_shape(emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic) -> None:
    emulator.fail(Fault.RATE_LIMITED, retry_after_s=2.5)
    no_retry = client.with_options(max_retries=0)
    with pytest.raises(anthropic.RateLimitError) as caught:
        await no_retry.messages.create(model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "Hi"}])
    error = caught.value
    assert error.response.headers["retry-after"] == "3"
    assert error.response.headers["retry-after-ms"] == "2500"
    assert error.request_id is not None
    assert error.request_id.startswith("req_")
    assert error.body == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": error.api_message},
        "request_id": error.request_id,
    }


async def test_a_malformed_body_gets_a_400_not_a_traceback(emulator: ClaudeEmulator) -> None:
    headers = {"Authorization": f"Bearer {KEY}", "anthropic-version": "2026-10-21"}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{emulator.base_url}/v1/messages", data=b"{not json", headers=headers) as bad:
            assert bad.status == 400
            assert bad.headers["request-id"]
            body = await bad.json()
        async with session.post(f"{emulator.base_url}/v1/messages", json={"model": MODEL}, headers=headers) as short:
            assert short.status == 400
            assert (await short.json())["error"]["message"] == "max_tokens: Field required"
        async with session.post(f"{emulator.base_url}/v1/messages", json={}, headers={}) as anonymous:
            assert anonymous.status == 401
        no_version = {"Authorization": f"Bearer {KEY}"}
        async with session.post(f"{emulator.base_url}/v1/messages", json={}, headers=no_version) as unversioned:
            assert unversioned.status == 400
        async with session.get(f"{emulator.base_url}/v1/models") as unknown:
            assert unknown.status == 404
            assert (await unknown.json())["error"]["type"] == "not_found_error"
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert [r.status for r in emulator.requests] == [400, 400, 401, 400]


async def test_an_image_too_big_is_rejected_with_the_api_error_code(client: anthropic.AsyncAnthropic) -> None:
    data = base64.b64encode(_encoded((8001, 2), "PNG")).decode()
    with pytest.raises(anthropic.BadRequestError) as caught:
        await client.messages.create(
            model=MODEL,
            max_tokens=100,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": data},
                        },
                    ],
                }
            ],
        )
    assert caught.value.error_code == "image_dimensions_too_large"
    assert "messages.0.content.1" in str(caught.value.api_message)


async def test_each_call_takes_the_latency_with_the_first_token_earlier(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic
) -> None:
    emulator.latency_s, emulator.first_token_s = 0.3, 0.1
    started = time.monotonic()
    async with client.messages.stream(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "Hi"}]
    ) as stream:
        async for event in stream:
            if event.type == "message_start":
                first_token_s = time.monotonic() - started
        await stream.get_final_message()
    elapsed_s = time.monotonic() - started
    assert 0.1 <= first_token_s < 0.3 <= elapsed_s < 0.6
    record = emulator.requests[0]
    assert record.started_at is not None
    assert record.finished_at is not None
    assert 0.1 <= record.started_at - record.arrived_at < 0.2
    assert 0.3 <= record.finished_at - record.arrived_at < 0.4


async def test_a_non_streamed_call_takes_the_latency_too(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic
) -> None:
    emulator.latency_s = 0.2
    started = time.monotonic()
    await client.messages.create(model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "Hi"}])
    assert 0.2 <= time.monotonic() - started < 0.5


async def test_a_responder_replaces_the_answer_and_none_keeps_the_script(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic
) -> None:
    def responder(record: RecordedRequest) -> dict[str, Any] | None:
        return {"verdict": "custom"} if record.kind.kind == "generic" else None

    emulator.responder = responder
    custom = await client.messages.create(model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "Hello"}])
    scripted = await client.messages.create(
        model=MODEL,
        max_tokens=100,
        messages=[{"role": "user", "content": "<material_class>wood</material_class>"}],
    )
    assert custom.content[0].type == "text"
    assert json.loads(custom.content[0].text) == {"verdict": "custom"}
    assert scripted.content[0].type == "text"
    assert scripted.content[0].text == "Wood scores 2/10 for this part."


async def test_a_long_answer_is_cut_at_max_tokens(client: anthropic.AsyncAnthropic) -> None:
    message = await client.messages.create(
        model=MODEL,
        max_tokens=20,
        messages=[{"role": "user", "content": "<material_class>metal</material_class>"}],
        output_config={"format": {"type": "json_schema", "schema": _schema(BranchAnalysis)}},
    )
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 20


async def test_peak_concurrency_counts_requests_answered_together(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic
) -> None:
    emulator.latency_s = 0.2
    await asyncio.gather(
        *(
            client.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": f"n{i}"}])
            for i in range(5)
        )
    )
    assert emulator.peak_concurrency == 5
    assert emulator.in_flight == 0
    emulator.reset_stats()
    assert emulator.peak_concurrency == 0
    assert emulator.requests == []


async def test_stop_is_quick_while_a_request_hangs(emulator: ClaudeEmulator) -> None:
    emulator.fail(Fault.HANG)
    sdk = anthropic.AsyncAnthropic(api_key=KEY, base_url=emulator.base_url, max_retries=0, timeout=30.0)
    call = asyncio.create_task(
        sdk.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "Hi"}])
    )
    await emulator.wait_for_requests(1)
    started = time.monotonic()
    await emulator.stop()
    assert time.monotonic() - started < 1.0
    with pytest.raises(anthropic.APIConnectionError):
        await call
    assert emulator.requests[0].status is None
    await sdk.close()


def test_request_kinds_follow_the_prompt_tags() -> None:
    def body(text: str) -> dict[str, Any]:
        return {"messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]}

    branch = body("<material_class>polymer</material_class><operating_condition> hot </operating_condition>")
    assert request_kind(branch) == RequestKind("branch", "polymer", "hot")
    assert request_kind(body("<task>aggregate</task>")).kind == "aggregate"
    assert request_kind(body("<task>single</task>")).kind == "single"
    assert request_kind(body("<material_class>cheese</material_class>")).kind == "generic"
    assert request_kind({"system": "<task>single</task>", "messages": []}).kind == "generic"


# --- matrec.claude on the emulator ---------------------------------------------------------------


async def test_the_adapter_returns_a_validated_branch_analysis(emulator: ClaudeEmulator, claude: Claude) -> None:
    reply = await _branch(claude, "composite")
    assert reply.value.suitability == 6
    assert reply.value.recommended
    assert [c.criterion for c in reply.value.criteria] == ["cost"]
    assert reply.usage.output_tokens > 0
    assert reply.usage.cache_write_tokens == 0
    assert emulator.requests[0].kind == RequestKind("branch", "composite")


async def test_a_spend_limit_is_reported_after_one_request(emulator: ClaudeEmulator, claude: Claude) -> None:
    emulator.fail(Fault.SPEND_LIMIT, times=None)
    with pytest.raises(ModelCallError) as caught:
        await _branch(claude)
    assert caught.value.kind is CallFailure.SPEND_LIMIT
    assert [r.status for r in emulator.requests] == [429]


@pytest.mark.parametrize(
    ("fault", "failure"),
    [(Fault.OVERLOADED, CallFailure.OVERLOADED), (Fault.SERVER_ERROR, CallFailure.SERVER_ERROR)],
)
async def test_server_side_errors_are_reported_after_one_attempt(
    emulator: ClaudeEmulator, claude: Claude, fault: Fault, failure: CallFailure
) -> None:
    emulator.fail(fault, times=None, retry_after_s=FAST_RETRY_S)
    with pytest.raises(ModelCallError) as caught:
        await _branch(claude)
    assert caught.value.kind is failure
    assert len(emulator.requests) == 1  # the SDK's retries are off: matrec.retry is the one loop


@pytest.mark.parametrize(
    ("fault", "failure"),
    [
        (Fault.TRUNCATED, CallFailure.TRUNCATED),
        (Fault.REFUSAL, CallFailure.REFUSED),
        (Fault.INVALID_OUTPUT, CallFailure.INVALID_OUTPUT),
        (Fault.MALFORMED_JSON, CallFailure.INVALID_OUTPUT),
        (Fault.OVERLOADED_MIDSTREAM, CallFailure.OVERLOADED),
        (Fault.DROP_MIDSTREAM, CallFailure.DROPPED),
    ],
)
async def test_broken_answers_fail_the_call_without_a_retry(
    emulator: ClaudeEmulator, claude: Claude, fault: Fault, failure: CallFailure
) -> None:
    emulator.fail(fault, match="polymer")
    with pytest.raises(ModelCallError) as caught:
        await _branch(claude, "polymer")
    assert caught.value.kind is failure, caught.value.reason
    assert len(emulator.requests) == 1


async def test_invalid_output_names_the_broken_field(emulator: ClaudeEmulator, claude: Claude) -> None:
    emulator.fail(Fault.INVALID_OUTPUT)
    with pytest.raises(ModelCallError, match="suitability"):
        await _branch(claude)


async def test_a_hanging_request_times_out(emulator: ClaudeEmulator) -> None:
    emulator.fail(Fault.HANG)
    adapter = _adapter(emulator, timeout_s=0.3, max_retries=0)
    with pytest.raises(ModelCallError) as caught:
        await _branch(adapter)
    await adapter.aclose()
    assert caught.value.kind is CallFailure.TIMEOUT


async def test_a_stream_that_stalls_midway_times_out(emulator: ClaudeEmulator) -> None:
    emulator.latency_s, emulator.first_token_s = 10.0, 0.0
    adapter = _adapter(emulator, timeout_s=0.3, max_retries=0)
    with pytest.raises(ModelCallError) as caught:
        await _branch(adapter)
    await adapter.aclose()
    assert caught.value.kind is CallFailure.TIMEOUT


async def test_a_wrong_key_is_an_auth_failure(emulator: ClaudeEmulator) -> None:
    adapter = _adapter(emulator, key="sk-ant-wrong")
    with pytest.raises(ModelCallError) as caught:
        await _branch(adapter)
    await adapter.aclose()
    assert caught.value.kind is CallFailure.AUTH
    assert [r.status for r in emulator.requests] == [401]


async def test_a_jpeg_is_accepted_and_its_size_recorded(emulator: ClaudeEmulator, claude: Claude) -> None:
    image = _prepared(_encoded((300, 200), "JPEG"), "image/jpeg", (300, 200))
    reply = await _branch(claude, image=image)
    assert reply.value.suitability == 8
    assert emulator.requests[0].image_sizes == [(300, 200)]
    assert reply.usage.input_tokens > 300 * 200 // 750


async def test_bytes_that_are_not_the_declared_type_are_a_bad_request(emulator: ClaudeEmulator, claude: Claude) -> None:
    image = _prepared(_encoded((30, 20), "PNG"), "image/jpeg", (30, 20))
    with pytest.raises(ModelCallError) as caught:
        await _branch(claude, image=image)
    assert caught.value.kind is CallFailure.BAD_REQUEST
    assert "appears to be a image/png image" in caught.value.reason
    assert [r.status for r in emulator.requests] == [400]


async def test_six_branches_fired_together_all_write_the_cache(emulator: ClaudeEmulator, claude: Claude) -> None:
    emulator.latency_s, emulator.first_token_s = 0.6, 0.5  # all six arrive before any answer starts
    replies = await asyncio.gather(
        *(_branch(claude, m, shared_text=LONG_SHARED_TEXT, cache_prefix=True) for m in emulator.scores)
    )
    writes = {r.usage.cache_write_tokens for r in replies}
    assert len(writes) == 1
    assert writes.pop() >= 1024
    assert all(r.usage.cache_read_tokens == 0 for r in replies)


async def test_branches_sent_after_the_first_starts_answering_read_the_cache(
    emulator: ClaudeEmulator, claude: Claude
) -> None:
    emulator.latency_s = 0.3
    started = asyncio.Event()
    first = asyncio.create_task(
        _branch(claude, "metal", shared_text=LONG_SHARED_TEXT, cache_prefix=True, on_started=started.set)
    )
    await started.wait()
    rest = await asyncio.gather(
        *(_branch(claude, m, shared_text=LONG_SHARED_TEXT, cache_prefix=True) for m in list(emulator.scores)[1:])
    )
    primed = (await first).usage
    assert primed.cache_write_tokens >= 1024
    assert primed.cache_read_tokens == 0
    assert all(r.usage.cache_read_tokens == primed.cache_write_tokens for r in rest)
    assert all(r.usage.cache_write_tokens == 0 for r in rest)
    assert primed.input_tokens < 100
    assert all(r.usage.input_tokens < 100 for r in rest)


async def test_a_prefix_below_the_minimum_is_not_cached(emulator: ClaudeEmulator) -> None:
    haiku = _adapter(emulator, model=HIGH_MINIMUM_CACHE_MODEL)
    await _branch(haiku, cache_prefix=True)
    reply = await _branch(haiku, cache_prefix=True)
    await haiku.aclose()
    assert (reply.usage.cache_write_tokens, reply.usage.cache_read_tokens) == (0, 0)
    assert len(emulator.cache) == 0
