"""The Claude emulator's answers follow from the request, through the real `anthropic` SDK."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import pytest

from emulators.claude import ClaudeEmulator
from matrec.schema import AggregateVerdict, BranchAnalysis, SingleVerdict
from tests.engine_support import jpeg_bytes

KEY = "test-key"
MODEL = "claude-sonnet-5-5"
MAX_TOKENS = 8192
NEUTRAL_TEXT = "Wall bracket for a 20 kg pump, indoors, 500 a year"
BASE_SCORES = {"metal": 8, "polymer": 7, "composite": 6, "ceramic": 4, "elastomer": 3, "wood": 2}
MID_GREY = (120, 130, 140)


@pytest.fixture
async def emulator() -> AsyncIterator[ClaudeEmulator]:
    async with ClaudeEmulator(api_key=KEY) as claude:
        yield claude


@pytest.fixture
async def client(emulator: ClaudeEmulator) -> AsyncIterator[anthropic.AsyncAnthropic]:
    sdk = anthropic.AsyncAnthropic(api_key=KEY, base_url=emulator.base_url, max_retries=0, timeout=5.0)
    yield sdk
    await sdk.close()


def _content(task: str, text: str | None, color: tuple[int, int, int] | None) -> list[Any]:
    blocks: list[Any] = []
    if color is not None:
        data = base64.b64encode(jpeg_bytes(320, 240, color)).decode()
        blocks.append({"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": data}})
    if text is not None:
        blocks.append({"type": "text", "text": f"<part_context>\n{text}\n</part_context>"})
    return [*blocks, {"type": "text", "text": task}]


async def _single(
    client: anthropic.AsyncAnthropic, text: str | None, color: tuple[int, int, int] | None = None
) -> SingleVerdict:
    message = await client.messages.parse(
        model=MODEL,
        max_tokens=MAX_TOKENS,
        messages=[{"role": "user", "content": _content("<task>single</task>", text, color)}],
        output_format=SingleVerdict,
    )
    assert message.parsed_output is not None
    return message.parsed_output


async def _branch(
    client: anthropic.AsyncAnthropic, material: str, text: str | None, color: tuple[int, int, int] | None = None
) -> BranchAnalysis:
    task = f"<task>branch</task>\n<material_class>{material}</material_class>"
    message = await client.messages.parse(
        model=MODEL,
        max_tokens=MAX_TOKENS,
        messages=[{"role": "user", "content": _content(task, text, color)}],
        output_format=BranchAnalysis,
    )
    assert message.parsed_output is not None
    return message.parsed_output


def _scores(verdict: SingleVerdict) -> dict[str, int]:
    return {a.material.value: a.suitability for a in verdict.assessments}


@pytest.mark.parametrize(
    ("text", "color"), [(NEUTRAL_TEXT, MID_GREY), (NEUTRAL_TEXT, None), (None, MID_GREY), (None, None)]
)
async def test_a_neutral_part_keeps_the_base_scores_and_ranking(
    client: anthropic.AsyncAnthropic, text: str | None, color: tuple[int, int, int] | None
) -> None:
    verdict = await _single(client, text, color)
    assert _scores(verdict) == BASE_SCORES
    assert (verdict.best.value, verdict.runner_up.value) == ("metal", "polymer")


async def test_a_stated_250_c_lowers_polymer_and_raises_ceramic_and_says_why(client: anthropic.AsyncAnthropic) -> None:
    polymer = await _branch(client, "polymer", "A pump housing running at 250 °C")
    ceramic = await _branch(client, "ceramic", "A pump housing running at 250 °C")
    assert polymer.suitability < BASE_SCORES["polymer"]
    assert ceramic.suitability > BASE_SCORES["ceramic"]
    assert any("250 °C" in item for item in polymer.evidence)
    assert "250 °C" in polymer.summary


async def test_heat_moves_the_environment_dimension_and_leaves_the_others(client: anthropic.AsyncAnthropic) -> None:
    polymer = await _branch(client, "polymer", "A pump housing running at 250 °C")
    assert polymer.dimensions.environment < BASE_SCORES["polymer"]
    assert polymer.dimensions.cost == polymer.dimensions.weight == BASE_SCORES["polymer"]


async def test_1300_c_makes_ceramic_the_best_class(client: anthropic.AsyncAnthropic) -> None:
    verdict = await _single(client, "Kiln furniture support, 1300 C")
    assert verdict.best.value == "ceramic"


async def test_salt_water_penalises_metal_and_wood(client: anthropic.AsyncAnthropic) -> None:
    scores = _scores(await _single(client, "A cleat on a sailing boat, in salt spray"))
    assert scores["metal"] < BASE_SCORES["metal"] and scores["wood"] < BASE_SCORES["wood"]
    assert scores["polymer"] > scores["metal"]


async def test_a_gasket_raises_elastomer(client: anthropic.AsyncAnthropic) -> None:
    analysis = await _branch(client, "elastomer", "A flange gasket for a water pipe")
    assert analysis.suitability > BASE_SCORES["elastomer"]
    assert any('"gasket"' in item for item in analysis.evidence)


async def test_a_lightweight_drone_arm_makes_composite_the_best_class(client: anthropic.AsyncAnthropic) -> None:
    verdict = await _single(client, "A lightweight arm for a racing drone")
    assert verdict.best.value == "composite"


async def test_a_garden_bench_makes_wood_the_best_class(client: anthropic.AsyncAnthropic) -> None:
    verdict = await _single(client, "The seat slats of a garden bench")
    assert verdict.best.value == "wood"


async def test_ten_thousand_a_year_makes_polymer_the_best_class(client: anthropic.AsyncAnthropic) -> None:
    verdict = await _single(client, "A cable clip, 10,000 a year")
    assert verdict.best.value == "polymer"


async def test_a_brown_photo_nudges_wood_up_and_cites_the_measured_colour(client: anthropic.AsyncAnthropic) -> None:
    analysis = await _branch(client, "wood", None, (150, 95, 50))
    assert analysis.suitability > BASE_SCORES["wood"]
    assert any(item.startswith("photo 320x240 px, mean colour #") for item in analysis.evidence)
    assert any("brown" in item for item in analysis.evidence)


@pytest.mark.parametrize(
    ("color", "raised"),
    [((25, 25, 28), {"composite", "elastomer"}), ((185, 188, 190), {"metal"}), ((245, 245, 245), {"ceramic"})],
    ids=["dark", "light-grey", "white"],
)
async def test_the_photos_brightness_nudges_the_classes_it_looks_like(
    client: anthropic.AsyncAnthropic, color: tuple[int, int, int], raised: set[str]
) -> None:
    scores = _scores(await _single(client, None, color))
    assert {m for m, s in scores.items() if s > BASE_SCORES[m]} == raised


async def test_the_aggregator_ranks_by_the_specialists_own_scores(client: anthropic.AsyncAnthropic) -> None:
    analyses = {"metal": 5, "polymer": 9, "wood": 3}
    text = "<task>aggregate</task>\n" + "\n".join(
        f'<analysis material="{m}">{json.dumps({"suitability": s})}</analysis>' for m, s in analyses.items()
    )
    message = await client.messages.parse(
        model=MODEL,
        max_tokens=MAX_TOKENS,
        messages=[{"role": "user", "content": text}],
        output_format=AggregateVerdict,
    )
    verdict = message.parsed_output
    assert verdict is not None
    assert (verdict.best.value, verdict.runner_up.value) == ("polymer", "metal")
    assert {(s.material.value, s.score) for s in verdict.scores} == set(analyses.items())


async def test_scores_given_to_the_constructor_win_over_the_rules() -> None:
    async with ClaudeEmulator(api_key=KEY, scores={"polymer": 7}) as claude:
        sdk = anthropic.AsyncAnthropic(api_key=KEY, base_url=claude.base_url, max_retries=0)
        scores = _scores(await _single(sdk, "A pump housing running at 250 °C"))
        await sdk.close()
    assert scores["polymer"] == 7
    assert scores["ceramic"] > BASE_SCORES["ceramic"]
