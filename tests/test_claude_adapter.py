"""`matrec.claude` on the emulator: one attempt per call, Claude 5.x request shape, errors a person can act on."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest

from emulators.claude import ClaudeEmulator, Fault
from matrec.claude import ChatDone, ChatEvent, ChatStarted, ChatText, Claude, Reply
from matrec.errors import CallFailure, ModelCallError
from matrec.models import Effort
from matrec.schema import BranchAnalysis
from matrec.settings import EngineSettings

KEY = "test-key"


@pytest.fixture
async def emulator() -> AsyncIterator[ClaudeEmulator]:
    async with ClaudeEmulator(api_key=KEY) as claude:
        yield claude


def _adapter(base_url: str, *, model: str = "claude-sonnet-5-5", key: str = KEY, timeout_s: float = 5.0) -> Claude:
    settings = EngineSettings(
        anthropic_api_key=key, anthropic_base_url=base_url, request_timeout_s=timeout_s, model=model
    )
    return Claude.from_settings(settings)


async def _ask(claude: Claude, *, effort: Effort | None = "medium", max_tokens: int = 16_000) -> Reply[BranchAnalysis]:
    try:
        return await claude.structured(
            system="You are a materials engineer.",
            images=(),
            shared_text="<part_context>a small bracket</part_context>",
            task_text="<task>branch</task>\n<material_class>metal</material_class>\nScore: strength, cost.",
            output=BranchAnalysis,
            max_tokens=max_tokens,
            effort=effort,
            cache_prefix=False,
        )
    finally:
        await claude.aclose()


async def _failure(claude: Claude) -> ModelCallError:
    with pytest.raises(ModelCallError) as caught:
        await _ask(claude)
    return caught.value


async def test_the_effort_of_the_call_kind_is_sent_in_output_config(emulator: ClaudeEmulator) -> None:
    await _ask(_adapter(emulator.base_url), effort="low")
    (request,) = emulator.requests
    assert request.body["output_config"]["effort"] == "low"
    assert request.body["output_config"]["format"]["type"] == "json_schema"
    assert not {"temperature", "top_p", "top_k", "thinking"} & request.body.keys()


async def test_a_model_without_effort_gets_no_effort_field(emulator: ClaudeEmulator) -> None:
    await _ask(_adapter(emulator.base_url, model="claude-haiku-4-5"), effort="medium")
    assert "effort" not in emulator.requests[0].body["output_config"]


async def test_the_sdk_does_not_retry_on_its_own(emulator: ClaudeEmulator) -> None:
    emulator.fail(Fault.OVERLOADED, times=None, retry_after_s=0.01)
    failure = await _failure(_adapter(emulator.base_url))
    assert failure.kind is CallFailure.OVERLOADED and len(emulator.requests) == 1


async def test_a_rate_limit_carries_the_retry_after_it_asked_for(emulator: ClaudeEmulator) -> None:
    emulator.fail(Fault.RATE_LIMITED, retry_after_s=2.5)
    failure = await _failure(_adapter(emulator.base_url))
    assert failure.kind is CallFailure.RATE_LIMITED and failure.retry_after_s == pytest.approx(2.5)


async def test_a_4xx_shows_the_apis_own_message_not_a_python_dict(emulator: ClaudeEmulator) -> None:
    failure = await _failure(_adapter(emulator.base_url, model="claude-sonnet-9"))
    assert failure.kind is CallFailure.BAD_REQUEST
    assert "{" not in failure.reason and "'type'" not in failure.reason
    assert "claude-sonnet-9" in failure.reason and "MATREC_MODEL" in failure.reason


async def test_a_wrong_key_says_which_variable_to_fix(emulator: ClaudeEmulator) -> None:
    failure = await _failure(_adapter(emulator.base_url, key="sk-ant-wrong"))
    assert failure.kind is CallFailure.AUTH and "ANTHROPIC_API_KEY" in failure.reason
    assert "invalid x-api-key" in failure.reason and "sk-ant-wrong" not in failure.reason


async def test_a_503_is_called_unavailable_not_overloaded(emulator: ClaudeEmulator) -> None:
    emulator.fail(Fault.SERVICE_UNAVAILABLE)
    failure = await _failure(_adapter(emulator.base_url))
    assert failure.kind is CallFailure.UNAVAILABLE
    assert "503" in failure.reason and "529" not in failure.reason and "overloaded" not in failure.reason


async def test_a_529_is_called_overloaded(emulator: ClaudeEmulator) -> None:
    emulator.fail(Fault.OVERLOADED)
    failure = await _failure(_adapter(emulator.base_url))
    assert failure.kind is CallFailure.OVERLOADED and "529" in failure.reason


async def test_a_connection_failure_names_the_url_it_tried() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    failure = await _failure(_adapter(f"http://127.0.0.1:{port}"))
    assert failure.kind is CallFailure.CONNECTION and f"http://127.0.0.1:{port}" in failure.reason


async def test_a_cut_off_answer_reports_what_it_was_billed(emulator: ClaudeEmulator) -> None:
    emulator.fail(Fault.TRUNCATED)
    failure = await _failure(_adapter(emulator.base_url))
    assert failure.kind is CallFailure.TRUNCATED and "thinking counts against it" in failure.reason
    assert failure.usage is not None and failure.usage.output_tokens > 0


async def test_a_chunk_that_is_not_json_is_a_dropped_answer(emulator: ClaudeEmulator) -> None:
    emulator.fail(Fault.MALFORMED_CHUNK)
    failure = await _failure(_adapter(emulator.base_url))
    assert failure.kind is CallFailure.DROPPED and "not JSON" in failure.reason


async def test_a_password_in_the_base_url_never_reaches_the_failure_reason() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    failure = await _failure(_adapter(f"http://proxy-user:s3cret@127.0.0.1:{port}"))
    assert "s3cret" not in failure.reason and "proxy-user:***@127.0.0.1" in failure.reason


async def _converse(claude: Claude, question: str = "Which grade?") -> list[ChatEvent]:
    try:
        stream = claude.converse(
            system="You are a materials engineer.",
            tools=[],
            messages=[{"role": "user", "content": f"<task>follow_up</task>\n<question>{question}</question>"}],
            max_tokens=16_000,
            effort="low",
        )
        return [event async for event in stream]
    finally:
        await claude.aclose()


async def test_converse_streams_text_and_ends_with_the_whole_answer(emulator: ClaudeEmulator) -> None:
    events = await _converse(_adapter(emulator.base_url), "What about 250 °C?")
    assert isinstance(events[0], ChatStarted)
    done = events[-1]
    assert isinstance(done, ChatDone)
    assert "".join(e.text for e in events if isinstance(e, ChatText)) == done.text
    assert "operates at 250 °C" in done.text and done.tool_calls == []
    (request,) = emulator.requests
    assert request.body["output_config"] == {"effort": "low"} and "tools" not in request.body


async def test_converse_maps_errors_like_structured_calls(emulator: ClaudeEmulator) -> None:
    with pytest.raises(ModelCallError) as caught:
        await _converse(_adapter(emulator.base_url, key="wrong"))
    assert caught.value.kind is CallFailure.AUTH
    emulator.fail(Fault.REFUSAL)
    with pytest.raises(ModelCallError) as refused:
        await _converse(_adapter(emulator.base_url))
    assert refused.value.kind is CallFailure.REFUSED
