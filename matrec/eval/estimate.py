"""What an evaluation plan will cost, before anything is spent: calls, tokens and dollars.

Built from what is knowable offline: the prompt texts as they will be sent, each case's text and
photo sizes, the output schemas, and the price table (`matrec.models`). The rest is assumption,
stated here and in the estimate's note:

- Text is about `CHARS_PER_TOKEN` characters a token (the 5.x tokenizer makes more tokens of the
  same text than 4.x; 3.5 errs towards more tokens, so a higher estimate).
- A photo costs width x height / 750 tokens (Anthropic's vision docs), after the engine's own
  downscale to `max_image_edge_px` on the long edge.
- Thinking: Anthropic publishes no volumes per effort. `EXPECTED_THINKING_TOKENS` is the mean of
  the heavy-tailed distribution the project assumes (emulators/claude_thinking.py: lognormal around
  a median per effort, sigma 0.9, some calls not thinking at low/medium, 2% "long thinks" x5).
  Models that take no effort level (Haiku 4.5) think only when asked, which matrec never does.
- Answers are typical sizes of the structured outputs (`*_ANSWER_TOKENS`).
- With prompt caching (`MATREC_CACHE=prime`) the calls of a consultation that share the prefix
  (system, photos, description) write it once and read it in the others, when the prefix reaches
  the model's minimum cacheable length; the aggregator's prefix is not shared.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Final

from matrec import prompting
from matrec.choices import CacheStrategy, Mode, Strategy
from matrec.eval.dataset import Case, Dataset, load_dataset
from matrec.eval.results import Consultation, Estimate, EvalPlan, plan_consultations
from matrec.materials import CLASS_ORDER, MaterialClass
from matrec.models import Effort, model_info
from matrec.results import TokenUsage
from matrec.schema import AggregateVerdict, BranchAnalysis, SingleVerdict
from matrec.settings import EngineSettings

CHARS_PER_TOKEN: Final = 3.5
IMAGE_PIXELS_PER_TOKEN: Final = 750
EXPECTED_THINKING_TOKENS: Final[Mapping[Effort, int]] = {
    "low": 120,
    "medium": 700,
    "high": 2400,
    "xhigh": 4900,
    "max": 9700,
}
BRANCH_ANSWER_TOKENS: Final = 450  # one BranchAnalysis: summary, score, five short lists
AGGREGATE_ANSWER_TOKENS: Final = 650  # the verdict with six rescored classes and a rationale
SINGLE_ANSWER_TOKENS: Final = 2200  # six class analyses in one answer
MESSAGE_OVERHEAD_TOKENS: Final = 20  # roles, block framing
# The minimum cacheable prompt per model (Anthropic's prompt caching page); unknown models get the largest.
MIN_CACHEABLE_TOKENS: Final[Mapping[str, int]] = {
    "claude-sonnet-5-5": 512,
    "claude-sonnet-5": 1024,
    "claude-opus-5-5": 512,
    "claude-opus-5": 512,
    "claude-haiku-4-5": 4096,
    "claude-haiku-4-5-20251001": 4096,
}
DEFAULT_MIN_CACHEABLE_TOKENS: Final = 4096


@dataclass(frozen=True)
class _Call:
    """One call's expected size: the prefix that may be cached, the rest of the input, the output."""

    prefix_tokens: int  # system + photos + description
    rest_tokens: int  # schema and task text
    answer_tokens: int
    thinking_tokens: int
    image_tokens: int
    shares_prefix: bool = True  # the aggregator's prefix differs from the branches'


def text_tokens(text: str) -> int:
    """Expected tokens of `text` (characters / CHARS_PER_TOKEN, rounded up)."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def image_tokens(width: int, height: int, max_edge_px: int) -> int:
    """Expected tokens of a photo sent after downscaling its long edge to `max_edge_px`."""
    scale = min(1.0, max_edge_px / max(width, height))
    return math.ceil(round(width * scale) * round(height * scale) / IMAGE_PIXELS_PER_TOKEN)


def estimate(plan: EvalPlan, settings: EngineSettings, dataset: Dataset | None = None) -> Estimate:
    """Calls, tokens and cost of running `plan` (the dataset is read unless given); see the module doc."""
    dataset = dataset or load_dataset(plan.dataset)
    cases = {case.id: case for case in dataset.cases}
    photo_tokens = {case.id: _photo_tokens(dataset, case, settings.max_image_edge_px) for case in dataset.cases}
    consultations = plan_consultations(plan, list(cases))
    calls = 0
    usage_by_model: dict[str, TokenUsage] = {}
    images = thinking = 0
    for consultation in consultations:
        planned = _calls(consultation, cases[consultation.case_id], photo_tokens[consultation.case_id], settings)
        usage = _usage(planned, consultation.model, settings.cache)
        usage_by_model[consultation.model] = usage_by_model.get(consultation.model, TokenUsage()) + usage
        calls += len(planned)
        images += sum(c.image_tokens for c in planned)
        thinking += sum(c.thinking_tokens for c in planned)
    total = TokenUsage.total(list(usage_by_model.values()))
    unpriced: list[str] = []
    usd = 0.0
    for model, usage in usage_by_model.items():
        prices = settings.model_copy(update={"model": model}).price_table
        if prices is None:
            unpriced.append(model)
        else:
            usd += usage.cost_usd(prices)
    return Estimate(
        consultations=len(consultations),
        calls=calls,
        input_tokens=total.input_tokens + total.cache_write_tokens + total.cache_read_tokens,
        image_tokens=images,
        output_tokens=total.output_tokens,
        thinking_tokens=thinking,
        usd=None if unpriced else usd,
        unpriced=unpriced,
        note=_note(plan, settings),
    )


def _photo_tokens(dataset: Dataset, case: Case, max_edge_px: int) -> int:
    path = dataset.image_path(case)
    if path is None:
        return 0
    from PIL import Image  # only when a case has a photo: Pillow is slow to import

    with Image.open(path) as image:  # reads the header, not the pixels
        width, height = image.size
    return image_tokens(width, height, max_edge_px)


def _thinking(model: str, effort: Effort) -> int:
    info = model_info(model)
    takes_effort = info.takes_effort if info else True  # as matrec.claude treats an unknown model
    return EXPECTED_THINKING_TOKENS[effort] if takes_effort else 0


@cache
def _schema_tokens(output: type) -> int:
    return text_tokens(json.dumps(output.model_json_schema()))  # type: ignore[attr-defined]


def _calls(consultation: Consultation, case: Case, photos: int, settings: EngineSettings) -> list[_Call]:
    """The calls one consultation makes, each with its expected size."""
    shared = text_tokens(prompting.shared_text(case.text, photos=1 if case.image else 0))
    thinking = _thinking(consultation.model, consultation.effort)
    branch_prefix = text_tokens(prompting.branch_system()) + photos + shared
    if consultation.mode is Mode.SINGLE:
        samples = settings.vote_samples if consultation.strategy is Strategy.VOTE else 1
        rest = _schema_tokens(SingleVerdict) + text_tokens(prompting.single_task()) + MESSAGE_OVERHEAD_TOKENS
        return [_Call(branch_prefix, rest, SINGLE_ANSWER_TOKENS, thinking, photos)] * samples
    conditions: Sequence[str | None] = settings.conditions if consultation.mode is Mode.NESTED else [None]
    planned = [
        _Call(
            branch_prefix,
            _schema_tokens(BranchAnalysis) + _branch_task_tokens(m, c) + MESSAGE_OVERHEAD_TOKENS,
            BRANCH_ANSWER_TOKENS,
            thinking,
            photos,
        )
        for m in CLASS_ORDER
        for c in conditions
    ]
    if consultation.strategy is Strategy.CLAUDE:
        analyses = len(planned) * BRANCH_ANSWER_TOKENS  # every analysis goes to the aggregator as JSON
        prefix = text_tokens(prompting.aggregator_system()) + shared
        rest = _schema_tokens(AggregateVerdict) + analyses + MESSAGE_OVERHEAD_TOKENS
        planned.append(_Call(prefix, rest, AGGREGATE_ANSWER_TOKENS, thinking, 0, shares_prefix=False))
    return planned


@cache
def _branch_task_tokens(material: MaterialClass, condition: str | None) -> int:
    return text_tokens(prompting.branch_task(material, condition))


def _usage(planned: list[_Call], model: str, cache: CacheStrategy) -> TokenUsage:
    """Billed tokens of one consultation's calls: the first sharer of a cacheable prefix writes it, the rest read."""
    minimum = MIN_CACHEABLE_TOKENS.get(model, DEFAULT_MIN_CACHEABLE_TOKENS)
    sharers = [c for c in planned if c.shares_prefix]
    caching = cache is CacheStrategy.PRIME and len(sharers) > 1 and sharers[0].prefix_tokens >= minimum
    usage = TokenUsage()
    written = False
    for call in planned:
        output = call.answer_tokens + call.thinking_tokens
        if caching and call.shares_prefix:
            usage += TokenUsage(
                input_tokens=call.rest_tokens,
                cache_write_tokens=0 if written else call.prefix_tokens,
                cache_read_tokens=call.prefix_tokens if written else 0,
                output_tokens=output,
            )
            written = True
        else:
            usage += TokenUsage(input_tokens=call.prefix_tokens + call.rest_tokens, output_tokens=output)
    return usage


def _note(plan: EvalPlan, settings: EngineSettings) -> str:
    efforts = ", ".join(f"{e} ~{EXPECTED_THINKING_TOKENS[e]:,}" for e in plan.efforts)
    caching = "prefix cached across a consultation's calls" if settings.cache is CacheStrategy.PRIME else "no caching"
    return (
        f"Assumes ~{CHARS_PER_TOKEN} characters a token, photos at width x height / {IMAGE_PIXELS_PER_TOKEN} "
        f"tokens after downscaling to {settings.max_image_edge_px} px, thinking tokens per call by effort "
        f"({efforts}; an assumed mean, Anthropic publishes none), answers of ~{BRANCH_ANSWER_TOKENS} "
        f"(branch), ~{AGGREGATE_ANSWER_TOKENS} (aggregator), ~{SINGLE_ANSWER_TOKENS} (single) tokens, "
        f"{caching}, no retries."
    )
