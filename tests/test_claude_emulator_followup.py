"""The Claude emulator's follow-up answers, tool rules and request limits, through the real `anthropic` SDK."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anthropic
import pytest
from PIL import Image

from emulators.claude import ClaudeEmulator
from emulators.claude_followup import language, requirement_changes
from tests.engine_support import KEY

MODEL = "claude-sonnet-5-5"
TOOL: dict[str, Any] = {
    "name": "propose_rerun",
    "description": "Propose a re-run with changed requirements.",
    "input_schema": {"type": "object", "properties": {"changes": {"type": "array", "items": {"type": "string"}}}},
}
CONSULTATION = (
    '<consultation part="clip" photos="0" mode="parallel">\n'
    '<analysis material="polymer" status="assessed">\n'
    "Verdict: recommended. Polymer suits a snap clip.\n"
    "Grades: POM-C; PA66-GF30\n"
    "Key properties: density 1.41 g/cm3 | Young's modulus 2.9 GPa | strength yield 65 MPa | "
    "max service temperature 105 °C | relative cost 1.5\n"
    "</analysis>\n"
    '<analysis material="metal" status="assessed">\n'
    "Key properties: density 7.85 g/cm3 | Young's modulus 200 GPa | strength yield 250 MPa | "
    "max service temperature 500 °C | relative cost 1\n"
    "</analysis>\n"
    '<recommendation best="polymer" runner_up="metal" confidence="high">\n'
    "Calibrated scores: metal 6.0/10, polymer 8.5/10\n"
    "</recommendation>\n</consultation>\n" + "Padding so the prefix is long enough to cache. " * 60
)


@pytest.fixture
async def client(claude: ClaudeEmulator) -> AsyncIterator[anthropic.AsyncAnthropic]:
    sdk = anthropic.AsyncAnthropic(api_key=KEY, base_url=claude.base_url, max_retries=0, timeout=20.0)
    yield sdk
    await sdk.close()


def _question(question: str) -> list[dict[str, Any]]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": CONSULTATION, "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": f"<task>follow_up</task>\n<question>\n{question}\n</question>"},
            ],
        }
    ]


async def _ask(
    client: anthropic.AsyncAnthropic,
    question: str,
    tools: Sequence[dict[str, Any]] = (TOOL,),
    tool_choice: Any = anthropic.omit,
) -> tuple[anthropic.types.Message, list[str]]:
    """The final message, and the delta types in the order they were streamed."""
    deltas: list[str] = []
    async with client.messages.stream(
        model=MODEL,
        max_tokens=32_000,  # room for the longest thinking at the default effort
        system="You are a materials engineer.",
        messages=_question(question),  # type: ignore[arg-type]
        tools=list(tools),  # type: ignore[arg-type]
        tool_choice=tool_choice,
    ) as stream:
        async for event in stream:
            if event.type == "content_block_delta":
                deltas.append(event.delta.type)
        message = await stream.get_final_message()
    return message, deltas


def _text(message: anthropic.types.Message) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


def _user(content: list[dict[str, Any]]) -> Any:
    """One user turn, as the SDK's typed parameter (built as plain dicts here)."""
    return [{"role": "user", "content": content}]


def _png(width: int, height: int) -> dict[str, Any]:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (120, 130, 140)).save(buffer, "PNG")
    data = base64.b64encode(buffer.getvalue()).decode()
    return {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}


async def test_a_follow_up_cites_the_best_class_and_the_numbers_of_the_consultation(
    client: anthropic.AsyncAnthropic, claude: ClaudeEmulator
) -> None:
    message, _ = await _ask(client, "How hot can it get?")
    text = _text(message)
    assert "max service temperature 105 °C" in text
    assert "recommends polymer (8.5/10), ahead of metal (6.0/10)" in text
    assert claude.requests[0].kind.kind == "follow_up"
    assert message.stop_reason == "end_turn"
    assert [block.type for block in message.content][-1] == "text"


async def test_the_class_the_question_names_is_the_one_answered_about(client: anthropic.AsyncAnthropic) -> None:
    message, _ = await _ask(client, "Would steel be stiffer?")
    assert "For metal, the consultation lists strength yield 250 MPa; Young's modulus 200 GPa." in _text(message)


async def test_a_requirement_change_is_a_streamed_propose_rerun_call_after_the_text(
    client: anthropic.AsyncAnthropic,
) -> None:
    message, deltas = await _ask(client, "It will sit outdoors and carry 20 kg, 5,000 per year.")
    assert message.stop_reason == "tool_use"
    assert [block.type for block in message.content][-2:] == ["text", "tool_use"]
    call = message.content[-1]
    assert call.type == "tool_use" and call.name == "propose_rerun"
    assert call.input == {"changes": ["5,000 parts per year", "used outdoors (UV and weather)", "carries 20 kg"]}
    assert "text_delta" in deltas and deltas[-1] == "input_json_delta"
    assert deltas.index("input_json_delta") > max(i for i, d in enumerate(deltas) if d == "text_delta")


async def test_without_the_tool_a_requirement_change_is_only_said(client: anthropic.AsyncAnthropic) -> None:
    message, _ = await _ask(client, "What about 250 °C?", tools=())
    assert message.stop_reason == "end_turn"
    assert "operates at 250 °C" in _text(message)
    assert all(block.type != "tool_use" for block in message.content)


async def test_tool_choice_none_makes_no_call(client: anthropic.AsyncAnthropic) -> None:
    message, _ = await _ask(client, "What about 250 °C?", tool_choice={"type": "none"})
    assert message.stop_reason == "end_turn"
    assert all(block.type != "tool_use" for block in message.content)


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Pourquoi le polymère est-il mieux que le métal pour cette pièce ?", "La consultation recommande polymer"),
        ("¿Por qué es mejor el plástico para esta pieza?", "La consulta recomienda polymer"),
        ("Warum ist Kunststoff hier besser als Metall?", "Die Beratung empfiehlt polymer"),
        ("Why is polymer better than metal here?", "The consultation recommends polymer"),
    ],
)
async def test_the_answer_is_in_the_language_of_the_question(
    client: anthropic.AsyncAnthropic, question: str, expected: str
) -> None:
    message, _ = await _ask(client, question)
    assert expected in _text(message)


@pytest.mark.parametrize("question", ["What's the weather like tomorrow?", "Tell me a joke", "Wie spät ist es?"])
async def test_an_unrelated_question_gets_a_short_polite_redirect(
    client: anthropic.AsyncAnthropic, question: str
) -> None:
    message, _ = await _ask(client, question)
    text = _text(message)
    assert "only" in text or "nur" in text
    assert len(text) < 200
    assert message.stop_reason == "end_turn"


def test_requirement_changes_are_read_in_several_forms() -> None:
    assert requirement_changes("runs at 250°C") == ["operates at 250 °C"]
    assert requirement_changes("up to 300 degrees F") == ["operates at 300 °F"]
    assert requirement_changes("10k a year, food contact") == ["10k parts per year", "food contact"]
    assert requirement_changes("in salt water, 2 kN") == ["exposed to salt water", "carries 2 kN"]
    assert requirement_changes("Lebensmittelkontakt, 500 Stück pro Jahr") == ["500 parts per year", "food contact"]
    assert requirement_changes("which grade?") == []


def test_the_language_is_english_unless_another_clearly_wins() -> None:
    assert language("Was ist mit der Temperatur?") == "de"
    assert language("Quel est le meilleur matériau pour la pièce ?") == "fr"
    assert language("¿Cuál es el mejor material para esta pieza?") == "es"
    assert language("What about the die casting?") == "en"
    assert language("PEEK?") == "en"


async def test_a_follow_up_takes_its_own_latency_and_thinks_like_any_request() -> None:
    async with ClaudeEmulator(api_key=KEY, latencies={"follow_up": 0.2}, thinking_tokens=50) as claude:
        sdk = anthropic.AsyncAnthropic(api_key=KEY, base_url=claude.base_url, max_retries=0)
        try:
            message, deltas = await _ask(sdk, "Which grade?")
        finally:
            await sdk.close()
    (request,) = claude.requests
    assert request.service_s == pytest.approx(0.2)
    assert message.content[0].type == "thinking"
    assert deltas[0] == "signature_delta"


@pytest.mark.parametrize(
    ("tool", "message"),
    [
        (
            {**TOOL, "name": "propose rerun"},
            "tools.0.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'",
        ),
        ({**TOOL, "name": "x" * 129}, "String should match pattern"),
        ({"name": "propose_rerun"}, "tools.0.custom.input_schema: Field required"),
        ({**TOOL, "input_schema": {"type": "array"}}, "tools.0.custom.input_schema.type: Input should be 'object'"),
    ],
)
async def test_a_malformed_tool_is_rejected_like_the_api_does(
    client: anthropic.AsyncAnthropic, tool: dict[str, Any], message: str
) -> None:
    with pytest.raises(anthropic.BadRequestError, match=re.escape(message)):
        await _ask(client, "Which grade?", tools=[tool])


async def test_two_tools_with_one_name_are_rejected(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match="Tool names must be unique"):
        await _ask(client, "Which grade?", tools=[TOOL, TOOL])


async def test_tools_are_part_of_the_cached_prefix(client: anthropic.AsyncAnthropic, claude: ClaudeEmulator) -> None:
    other = {**TOOL, "description": "A different description."}
    for tools in ([TOOL], [TOOL], [other]):
        await _ask(client, "Which grade?", tools=tools)
    usage = [r.usage or {} for r in claude.requests]
    assert usage[0]["cache_creation_input_tokens"] > 0
    assert usage[1]["cache_read_input_tokens"] == usage[0]["cache_creation_input_tokens"]
    assert usage[2]["cache_read_input_tokens"] == 0 and usage[2]["cache_creation_input_tokens"] > 0


async def test_more_than_100_images_in_one_request_are_rejected(client: anthropic.AsyncAnthropic) -> None:
    content = [_png(8, 8) for _ in range(101)] + [{"type": "text", "text": "What is this?"}]
    with pytest.raises(anthropic.BadRequestError, match="Too many images"):
        await client.messages.create(model=MODEL, max_tokens=100, messages=_user(content))


async def test_over_20_images_each_must_be_at_most_2000_px(client: anthropic.AsyncAnthropic) -> None:
    twenty = [_png(2100, 8)] + [_png(8, 8) for _ in range(19)]
    ok = await client.messages.create(
        model=MODEL,
        max_tokens=100,
        messages=_user([*twenty, {"type": "text", "text": "?"}]),
    )
    assert ok.stop_reason is not None
    with pytest.raises(
        anthropic.BadRequestError, match="exceed max allowed size for many-image requests: 2000"
    ) as caught:
        await client.messages.create(
            model=MODEL,
            max_tokens=100,
            messages=_user([*twenty, _png(8, 8), {"type": "text", "text": "?"}]),
        )
    assert "messages.0.content.0.image" in str(caught.value)


async def test_a_request_over_32_mb_is_413_request_too_large(client: anthropic.AsyncAnthropic) -> None:
    big = "x" * (33 * 1024 * 1024)
    with pytest.raises(anthropic.APIStatusError) as caught:
        await client.messages.create(model=MODEL, max_tokens=100, messages=[{"role": "user", "content": big}])
    assert caught.value.status_code == 413
    assert isinstance(caught.value.body, dict) and caught.value.body["error"]["type"] == "request_too_large"
