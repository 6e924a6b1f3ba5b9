"""Follow-up questions through the engine: real SDK, loopback Claude emulator, streamed answers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence

import pytest

from emulators.claude import ClaudeEmulator, Fault, RecordedRequest
from matrec.choices import CacheStrategy, Mode
from matrec.engine import Engine, Part, RunOptions
from matrec.errors import BadInputError, ModelCallError
from matrec.followup import (
    PROPOSE_RERUN,
    Finished,
    FollowUpEvent,
    FollowUpReply,
    PriorTurn,
    Started,
    TextDelta,
    render_consultation,
)
from matrec.images import PreparedImage
from matrec.materials import CLASS_ORDER
from matrec.prompting import followup_system
from matrec.results import Recommendation
from tests.engine_support import KEY, jpeg_bytes, running_engine

BRACKET = Part(
    images=(jpeg_bytes(), jpeg_bytes(color=(150, 150, 160))),
    context="Wall bracket for a 20 kg pump, indoors, 500 per year.",
    label="bracket",
)


@pytest.fixture
async def engine(claude: ClaudeEmulator) -> AsyncIterator[Engine]:
    async with running_engine(claude, cache=CacheStrategy.PRIME) as engine:
        yield engine


@pytest.fixture
async def consulted(engine: Engine, claude: ClaudeEmulator) -> tuple[tuple[PreparedImage, ...], Recommendation]:
    images = await engine.prepare(BRACKET)
    rec = await engine.evaluate(BRACKET, prepared=images)
    claude.reset_stats()
    return images, rec


async def _ask(
    engine: Engine,
    consulted: tuple[Sequence[PreparedImage], Recommendation],
    question: str,
    history: Sequence[PriorTurn] = (),
    asker: str | None = None,
) -> list[FollowUpEvent]:
    images, rec = consulted
    stream = engine.follow_up(
        images=images, consultation=render_consultation(rec), history=history, question=question, asker=asker
    )
    return [event async for event in stream]


def _reply(events: Sequence[FollowUpEvent]) -> FollowUpReply:
    last = events[-1]
    assert isinstance(last, Finished)
    return last.reply


async def test_the_request_carries_every_photo_the_six_analyses_and_the_question(
    engine: Engine, claude: ClaudeEmulator, consulted: tuple[tuple[PreparedImage, ...], Recommendation]
) -> None:
    await _ask(engine, consulted, "Which aluminium grade would you take?", asker="Dana")
    (request,) = claude.requests
    assert request.kind.kind == "follow_up"
    assert request.body["system"] == [{"type": "text", "text": followup_system()}]
    assert request.body["tools"] == [PROPOSE_RERUN]
    assert request.body.get("tool_choice", {"type": "auto"}) == {"type": "auto"}
    assert request.body["output_config"] == {"effort": "low"}
    assert request.body["max_tokens"] == engine.settings.followup_max_tokens
    assert request.image_sizes == [(640, 480), (640, 480)]
    first = request.body["messages"][0]["content"]
    consultation = first[2]
    assert consultation["cache_control"] == {"type": "ephemeral"}
    for material in CLASS_ORDER:
        assert f'<analysis material="{material.value}" status="assessed">' in consultation["text"]
    assert '<recommendation best="metal" runner_up="polymer"' in consultation["text"]
    assert first[-1]["text"].endswith("<question>\nWhich aluminium grade would you take?\n</question>")
    assert "<asker>Dana</asker>" in first[-1]["text"]


async def test_the_answer_streams_and_its_first_words_arrive_before_claude_has_finished() -> None:
    async with (
        ClaudeEmulator(api_key=KEY, latency_s=0.6, thinking=False) as claude,
        running_engine(claude) as engine,
    ):
        images = await engine.prepare(BRACKET)
        rec = await engine.evaluate(BRACKET, prepared=images)
        claude.reset_stats()
        seen: list[tuple[str, bool]] = []  # (event, whether Claude was still answering)
        async for event in engine.follow_up(
            images=images, consultation=render_consultation(rec), history=(), question="How strong is metal here?"
        ):
            seen.append((type(event).__name__, claude.requests[0].finished_at is None))
    kinds = [kind for kind, _ in seen]
    assert kinds[0] == "Started" and kinds[-1] == "Finished"
    assert kinds.count("TextDelta") >= 2
    first_text = kinds.index("TextDelta")
    assert seen[first_text][1], "the first words came only once the whole answer was there"


async def test_the_text_deltas_make_the_finished_text(
    engine: Engine, consulted: tuple[tuple[PreparedImage, ...], Recommendation]
) -> None:
    events = await _ask(engine, consulted, "How heavy would a metal bracket be?")
    assert isinstance(events[0], Started)
    streamed = "".join(e.text for e in events if isinstance(e, TextDelta))
    reply = _reply(events)
    assert streamed.strip() == reply.text
    assert "metal" in reply.text and "density" in reply.text and "g/cm3" in reply.text
    assert reply.changes == []
    assert reply.cost_usd is not None and reply.cost_usd > 0
    assert reply.usage.output_tokens > 0


async def test_a_requirement_change_comes_back_as_structured_changes(
    engine: Engine, claude: ClaudeEmulator, consulted: tuple[tuple[PreparedImage, ...], Recommendation]
) -> None:
    reply = _reply(await _ask(engine, consulted, "What if it runs at 250 °C and we make 10,000 a year?"))
    assert reply.changes == ["operates at 250 °C", "10,000 parts per year"]
    assert "re-running" in reply.text
    assert claude.requests[0].stop_reason == "tool_use"


async def test_a_plain_question_proposes_no_rerun(
    engine: Engine, claude: ClaudeEmulator, consulted: tuple[tuple[PreparedImage, ...], Recommendation]
) -> None:
    reply = _reply(await _ask(engine, consulted, "Why not polymer?"))
    assert reply.changes == []
    assert "polymer" in reply.text
    assert claude.requests[0].stop_reason == "end_turn"


async def test_a_second_follow_up_reads_the_first_ones_cache(
    engine: Engine, claude: ClaudeEmulator, consulted: tuple[tuple[PreparedImage, ...], Recommendation]
) -> None:
    first = _reply(await _ask(engine, consulted, "Which grade of aluminium?"))
    history = [PriorTurn("Which grade of aluminium?", first.text)]
    second = _reply(await _ask(engine, consulted, "Is it cheaper than polymer?", history, asker="Sam"))
    assert first.usage.cache_write_tokens > 0 and first.usage.cache_read_tokens == 0
    assert second.usage.cache_read_tokens == first.usage.cache_write_tokens
    assert claude.requests[1].usage is not None and claude.requests[1].usage["cache_read_input_tokens"] > 0
    one, two = (r.body for r in claude.requests)
    assert (one["tools"], one["system"]) == (two["tools"], two["system"])
    assert one["messages"][0]["content"][:3] == two["messages"][0]["content"][:3]  # photos, consultation


async def test_earlier_turns_follow_the_breakpoint_as_user_and_assistant_turns(
    engine: Engine, claude: ClaudeEmulator, consulted: tuple[tuple[PreparedImage, ...], Recommendation]
) -> None:
    history = [PriorTurn("Which grade?", "6061-T6."), PriorTurn("Unanswered?", ""), PriorTurn("Finish?", "Anodise.")]
    await _ask(engine, consulted, "And the cost?", history)
    messages = claude.requests[0].body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]
    assert messages[1]["content"] == [{"type": "text", "text": "6061-T6."}]
    assert "Unanswered?" in messages[2]["content"][0]["text"] and "Finish?" in messages[2]["content"][1]["text"]
    assert "<task>follow_up</task>" in messages[4]["content"][-1]["text"]
    assert "<task>" not in messages[0]["content"][-1]["text"]


async def test_a_question_outside_material_selection_gets_a_short_polite_redirect(
    engine: Engine, consulted: tuple[tuple[PreparedImage, ...], Recommendation]
) -> None:
    reply = _reply(await _ask(engine, consulted, "What's the weather like tomorrow?"))
    assert reply.text.startswith("I can only help with material selection for this part")
    assert reply.changes == []


async def test_a_question_in_german_is_answered_in_german(
    engine: Engine, consulted: tuple[tuple[PreparedImage, ...], Recommendation]
) -> None:
    reply = _reply(await _ask(engine, consulted, "Was wäre, wenn das Teil bei 150 °C läuft?"))
    assert "Die Beratung empfiehlt metal" in reply.text
    assert reply.changes == ["operates at 150 °C"]


async def test_an_overloaded_first_attempt_is_retried_before_any_text(
    engine: Engine, claude: ClaudeEmulator, consulted: tuple[tuple[PreparedImage, ...], Recommendation]
) -> None:
    claude.fail(Fault.OVERLOADED, match="follow_up", retry_after_s=0.01)
    events = await _ask(engine, consulted, "Which grade?")
    assert [r.status for r in claude.requests] == [529, 200]
    assert sum(isinstance(e, Started) for e in events) == 1
    assert _reply(events).text


async def test_a_stream_that_breaks_after_text_was_shown_fails_without_a_retry(
    engine: Engine, claude: ClaudeEmulator, consulted: tuple[tuple[PreparedImage, ...], Recommendation]
) -> None:
    claude.fail(Fault.DROP_MIDSTREAM, match="follow_up")
    shown: list[str] = []
    images, rec = consulted

    async def listen() -> None:
        async for event in engine.follow_up(
            images=images, consultation=render_consultation(rec), history=(), question="How strong is metal?"
        ):
            if isinstance(event, TextDelta):
                shown.append(event.text)

    with pytest.raises(ModelCallError):
        await listen()
    assert shown, "the drop came after some text"
    assert len(claude.requests) == 1


async def test_an_empty_question_is_refused_without_a_call(
    engine: Engine, claude: ClaudeEmulator, consulted: tuple[tuple[PreparedImage, ...], Recommendation]
) -> None:
    images, rec = consulted
    with pytest.raises(BadInputError):
        engine.follow_up(images=images, consultation=render_consultation(rec), history=(), question="  ")
    assert claude.requests == []


async def test_the_consultation_text_is_the_same_bytes_after_a_round_trip_through_json(
    consulted: tuple[tuple[PreparedImage, ...], Recommendation],
) -> None:
    _, rec = consulted
    text = render_consultation(rec)
    assert render_consultation(Recommendation.model_validate_json(rec.model_dump_json())) == text
    assert text.startswith('<consultation part="bracket" photos="2" mode="parallel">')
    for label in (
        "Verdict:",
        "Suitability:",
        "Grades:",
        "Processes:",
        "Key properties:",
        "Strengths:",
        "Concerns:",
        "Assumptions:",
        "Evidence:",
        "Calibrated scores:",
        "Rationale:",
        "Open questions:",
    ):
        assert label in text
    assert "max service temperature Al 150-250" in text  # the class's typical numbers, with units
    assert "20 kg pump" in text


async def test_a_follow_up_without_photos_still_works(engine: Engine, claude: ClaudeEmulator) -> None:
    part = Part(context="A garden bench seat, outdoors, 50 a year.")
    rec = await engine.evaluate(part)
    claude.reset_stats()
    started = time.perf_counter()
    events = [
        e
        async for e in engine.follow_up(
            images=(), consultation=render_consultation(rec), history=(), question="Which wood species?"
        )
    ]
    assert time.perf_counter() - started < 5
    assert claude.requests[0].image_sizes == []
    assert _reply(events).text


async def test_thinking_that_uses_the_whole_budget_is_retried_once_with_twice_the_budget() -> None:
    def thinking(record: RecordedRequest) -> int:
        return 50 if record.kind.kind != "follow_up" or record.body["max_tokens"] > 1024 else 5000

    async with (
        ClaudeEmulator(api_key=KEY, thinking_tokens=thinking) as claude,
        running_engine(claude, followup_max_tokens=1024) as engine,
    ):
        images = await engine.prepare(BRACKET)
        rec = await engine.evaluate(BRACKET, prepared=images)
        claude.reset_stats()
        events = [
            e
            async for e in engine.follow_up(
                images=images, consultation=render_consultation(rec), history=(), question="Which grade?"
            )
        ]
    assert [r.body["max_tokens"] for r in claude.requests] == [1024, 2048]
    assert [r.stop_reason for r in claude.requests] == ["max_tokens", "end_turn"]
    reply = _reply(events)
    assert reply.text
    assert reply.usage.output_tokens == 1024 + (claude.requests[1].output_tokens or 0)  # the cut-off one is billed too


async def test_a_stress_test_consultation_renders_every_condition(engine: Engine) -> None:
    rec = await engine.evaluate(BRACKET, RunOptions.from_settings(engine.settings, mode=Mode.NESTED))
    text = render_consultation(rec)
    assert text.count("<analysis material=") == 18
    for condition in engine.settings.conditions:
        assert f'condition="{condition}"' in text
    assert 'mode="nested"' in text
