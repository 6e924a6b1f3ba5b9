"""The Claude emulator's per-model rules, through the real `anthropic` SDK: what each Claude 5.x model rejects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import pytest

from emulators.claude import ClaudeEmulator

KEY = "test-key"
MODELS_5X = ("claude-sonnet-5", "claude-sonnet-5-5", "claude-opus-5", "claude-opus-5-5")
MODELS_5_5 = ("claude-sonnet-5-5", "claude-opus-5-5")
HAIKU = "claude-haiku-4-5"
ROOMY_MAX_TOKENS = 4096
HELLO: list[Any] = [{"role": "user", "content": "Hello"}]
# ~2,400 characters: about 780 tokens on the 5.x tokenizer, 600 on Haiku 4.5's
MID_SIZED_SYSTEM = "You are a materials engineer who answers briefly. " * 48


@pytest.fixture
async def emulator() -> AsyncIterator[ClaudeEmulator]:
    async with ClaudeEmulator(api_key=KEY, thinking=False) as claude:  # rule checks; thinking has its own tests
        yield claude


@pytest.fixture
async def client(emulator: ClaudeEmulator) -> AsyncIterator[anthropic.AsyncAnthropic]:
    sdk = anthropic.AsyncAnthropic(api_key=KEY, base_url=emulator.base_url, max_retries=0, timeout=5.0)
    yield sdk
    await sdk.close()


async def _rejected(client: anthropic.AsyncAnthropic, model: str, **params: Any) -> str:
    """The message of the 400 the request gets."""
    params.setdefault("messages", HELLO)
    with pytest.raises(anthropic.BadRequestError) as caught:
        await client.messages.create(model=model, max_tokens=ROOMY_MAX_TOKENS, **params)
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["error"]["type"] == "invalid_request_error"
    return str(body["error"]["message"])


async def _accepted(client: anthropic.AsyncAnthropic, model: str, **params: Any) -> anthropic.types.Message:
    params.setdefault("messages", HELLO)
    message: anthropic.types.Message = await client.messages.create(model=model, max_tokens=ROOMY_MAX_TOKENS, **params)
    return message


async def test_an_unknown_model_is_a_404_naming_the_model(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        await _accepted(client, "claude-sonnet-9")
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": "model: claude-sonnet-9"},
        "request_id": caught.value.request_id,
    }


@pytest.mark.parametrize("model", [*MODELS_5X, HAIKU, "claude-haiku-4-5-20251001"])
async def test_every_documented_model_id_answers(client: anthropic.AsyncAnthropic, model: str) -> None:
    message = await _accepted(client, model)
    assert message.model == model
    assert message.stop_reason == "end_turn"


async def test_sonnet_5_5_rejects_thinking_disabled_with_400_pointing_to_between_tools(
    client: anthropic.AsyncAnthropic,
) -> None:
    message = await _rejected(client, "claude-sonnet-5-5", thinking={"type": "disabled"})
    assert message.startswith('"thinking.type.disabled" is not supported for this model.')
    assert "between_tools" in message


async def test_sonnet_5_5_accepts_between_tools_up_to_high_effort(client: anthropic.AsyncAnthropic) -> None:
    message = await _accepted(
        client, "claude-sonnet-5-5", thinking={"type": "between_tools"}, output_config={"effort": "high"}
    )
    assert [block.type for block in message.content] == ["text"]


@pytest.mark.parametrize("effort", ["xhigh", "max"])
async def test_sonnet_5_5_rejects_between_tools_at_xhigh_or_max_effort(
    client: anthropic.AsyncAnthropic, effort: Any
) -> None:
    message = await _rejected(
        client, "claude-sonnet-5-5", thinking={"type": "between_tools"}, output_config={"effort": effort}
    )
    assert '"thinking.type.between_tools" is only supported with "output_config.effort" "high" or lower' in message


async def test_opus_5_5_rejects_thinking_disabled_with_the_documented_message(client: anthropic.AsyncAnthropic) -> None:
    assert await _rejected(client, "claude-opus-5-5", thinking={"type": "disabled"}) == (
        '"thinking.type.disabled" is not supported for this model. '
        'Use "thinking.type.adaptive" and "output_config.effort" to control thinking behavior.'
    )


@pytest.mark.parametrize("effort", ["low", "medium", "high"])
async def test_opus_5_accepts_thinking_disabled_at_high_effort_or_below(
    client: anthropic.AsyncAnthropic, effort: Any
) -> None:
    message = await _accepted(client, "claude-opus-5", thinking={"type": "disabled"}, output_config={"effort": effort})
    assert message.stop_reason == "end_turn"


@pytest.mark.parametrize("effort", ["xhigh", "max"])
async def test_opus_5_rejects_thinking_disabled_at_xhigh_or_max_effort(
    client: anthropic.AsyncAnthropic, effort: Any
) -> None:
    message = await _rejected(client, "claude-opus-5", thinking={"type": "disabled"}, output_config={"effort": effort})
    assert f'not "{effort}"' in message


async def test_sonnet_5_accepts_thinking_disabled_at_any_effort(client: anthropic.AsyncAnthropic) -> None:
    message = await _accepted(client, "claude-sonnet-5", thinking={"type": "disabled"}, output_config={"effort": "max"})
    assert message.stop_reason == "end_turn"


@pytest.mark.parametrize("model", MODELS_5X)
async def test_every_5x_model_rejects_a_manual_thinking_budget(client: anthropic.AsyncAnthropic, model: str) -> None:
    message = await _rejected(client, model, thinking={"type": "enabled", "budget_tokens": 2048})
    assert message == (
        '"thinking.type.enabled" is not supported for this model. '
        'Use "thinking.type.adaptive" and "output_config.effort" to control thinking behavior.'
    )


@pytest.mark.parametrize("model", MODELS_5X)
@pytest.mark.parametrize("sampling", [{"temperature": 0.2}, {"top_p": 0.9}, {"top_k": 40}])
async def test_every_5x_model_rejects_non_default_sampling_parameters(
    client: anthropic.AsyncAnthropic, model: str, sampling: dict[str, float]
) -> None:
    message = await _rejected(client, model, extra_body=sampling)
    assert f'"{next(iter(sampling))}" is not supported for this model' in message


async def test_temperature_one_is_the_default_and_is_accepted(client: anthropic.AsyncAnthropic) -> None:
    message = await _accepted(client, "claude-sonnet-5-5", extra_body={"temperature": 1.0})
    assert message.stop_reason == "end_turn"


@pytest.mark.parametrize("model", MODELS_5_5)
@pytest.mark.parametrize("choice", [{"type": "any"}, {"type": "tool", "name": "report"}])
async def test_the_5_5_models_reject_a_forced_tool_choice(
    client: anthropic.AsyncAnthropic, model: str, choice: Any
) -> None:
    tools: Any = [{"name": "report", "input_schema": {"type": "object", "properties": {}}}]
    message = await _rejected(client, model, tools=tools, tool_choice=choice)
    assert message.startswith(f'"tool_choice.type.{choice["type"]}" is not supported for this model.')


@pytest.mark.parametrize("model", MODELS_5X)
async def test_every_5x_model_rejects_assistant_prefill(client: anthropic.AsyncAnthropic, model: str) -> None:
    prefill: Any = [*HELLO, {"role": "assistant", "content": "{"}]
    message = await _rejected(client, model, messages=prefill)
    assert message == (
        "This model does not support assistant message prefill. The conversation must end with a user message."
    )


async def test_haiku_4_5_accepts_assistant_prefill(client: anthropic.AsyncAnthropic) -> None:
    prefill: Any = [*HELLO, {"role": "assistant", "content": "Sure:"}]
    assert (await _accepted(client, HAIKU, messages=prefill)).stop_reason == "end_turn"


async def test_haiku_4_5_rejects_the_effort_parameter(client: anthropic.AsyncAnthropic) -> None:
    assert await _rejected(client, HAIKU, output_config={"effort": "low"}) == (
        "This model does not support the effort parameter."
    )


async def test_haiku_4_5_rejects_adaptive_thinking(client: anthropic.AsyncAnthropic) -> None:
    message = await _rejected(client, HAIKU, thinking={"type": "adaptive"})
    assert message.startswith('"thinking.type.adaptive" is not supported for this model.')


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        (512, "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"),
        (ROOMY_MAX_TOKENS, "`max_tokens` must be greater than `thinking.budget_tokens`."),
    ],
)
async def test_haiku_4_5_rejects_a_thinking_budget_below_1024_or_not_below_max_tokens(
    client: anthropic.AsyncAnthropic, budget: int, message: str
) -> None:
    assert await _rejected(client, HAIKU, thinking={"type": "enabled", "budget_tokens": budget}) == message


async def test_haiku_4_5_rejects_thinking_with_a_forced_tool(client: anthropic.AsyncAnthropic) -> None:
    tools: Any = [{"name": "report", "input_schema": {"type": "object", "properties": {}}}]
    message = await _rejected(
        client,
        HAIKU,
        tools=tools,
        tool_choice={"type": "any"},
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    assert message == "Thinking may not be enabled when tool_choice forces tool use."


async def test_an_unknown_effort_level_is_a_400(client: anthropic.AsyncAnthropic) -> None:
    message = await _rejected(client, "claude-sonnet-5-5", output_config={"effort": "extreme"})
    assert message == "output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'"


@pytest.mark.parametrize(("model", "cap"), [("claude-sonnet-5-5", 128_000), (HAIKU, 64_000)])
async def test_max_tokens_above_the_models_output_cap_is_a_400(
    client: anthropic.AsyncAnthropic, model: str, cap: int
) -> None:
    with pytest.raises(anthropic.BadRequestError, match=f"max_tokens: {cap + 1} > {cap}"):
        async with client.messages.stream(model=model, max_tokens=cap + 1, messages=HELLO) as stream:
            await stream.get_final_message()


@pytest.mark.parametrize(
    ("model", "effort"),
    [
        ("claude-sonnet-5-5", "high"),
        ("claude-sonnet-5", "high"),
        ("claude-opus-5", "high"),
        ("claude-opus-5-5", "medium"),
        (HAIKU, None),
    ],
)
async def test_the_effort_in_force_is_the_models_default_when_none_is_sent(
    emulator: ClaudeEmulator, client: anthropic.AsyncAnthropic, model: str, effort: str | None
) -> None:
    await _accepted(client, model)
    await _accepted(client, "claude-sonnet-5-5", output_config={"effort": "low"})
    assert [r.effort for r in emulator.requests] == [effort, "low"]


@pytest.mark.parametrize(
    ("model", "cached"),
    [
        ("claude-sonnet-5", False),  # minimum 1,024 tokens
        ("claude-sonnet-5-5", True),  # 512
        ("claude-opus-5", True),  # 512
        ("claude-opus-5-5", True),  # 512
        (HAIKU, False),  # 4,096
    ],
)
async def test_the_minimum_cacheable_prompt_is_per_model(
    client: anthropic.AsyncAnthropic, model: str, cached: bool
) -> None:
    system: Any = [{"type": "text", "text": MID_SIZED_SYSTEM, "cache_control": {"type": "ephemeral"}}]
    message = await _accepted(client, model, system=system)
    assert ((message.usage.cache_creation_input_tokens or 0) > 0) == cached


async def test_the_5x_tokenizer_counts_about_30_percent_more_tokens_than_haiku_4_5(
    client: anthropic.AsyncAnthropic,
) -> None:
    text: Any = [{"role": "user", "content": "A die-cast bracket holding a pump to a wall. " * 100}]
    new = await _accepted(client, "claude-sonnet-5-5", messages=text)
    old = await _accepted(client, HAIKU, messages=text)
    assert new.usage.input_tokens / old.usage.input_tokens == pytest.approx(1.3, abs=0.01)
