"""The models the Claude emulator serves, and what each accepts, per Anthropic's model pages (2026).

    model              if omitted  thinking.type accepted             effort   forced tool  prefill  cache  tokens
    claude-sonnet-5    adaptive    adaptive, disabled                 high     yes          no       1,024  5.x
    claude-sonnet-5-5  adaptive    adaptive, between_tools (<= high)  high     no           no       512    5.x
    claude-opus-5      adaptive    adaptive, disabled (<= high)       high     yes          no       512    5.x
    claude-opus-5-5    adaptive    adaptive                           medium   no           no       512    5.x
    claude-haiku-4-5   no thinking enabled (budget), disabled         none     yes          yes      4,096  4.x

"if omitted": how a request without a `thinking` field runs; "effort": the default effort ("none":
`output_config.effort` is rejected); "cache": the minimum cacheable prompt in tokens; "tokens": the
tokenizer generation (`emulators.claude_usage`). Rate limits (`emulators.claude_ratelimit`) are per
model class, `limit_class`: "sonnet-5" (Sonnet 5 and 5.5), "opus-5" (Opus 5 and 5.5), "haiku-4-5" (an
assumption by analogy with the rate-limit page's "Sonnet 4.x" and "Opus 4.x" classes, which combine
the versions of one generation; Haiku 4.5 has its own row).

Sources: "Claude Sonnet 5 / 5.5 / Opus 5 / 5.5 overview", "What's new in Claude Sonnet 5.5 / Opus 5 /
Opus 5.5", the Sonnet 5 and 5.5 migration guides and the prompt caching page. Where the project's
brief disagreed the docs won: Opus 5's minimum cacheable prompt is 512 tokens (What's new in Opus
5), and assistant prefill is rejected on every 5.x model, not only the 5.5s (it is not among Sonnet
5.5's or Opus 5.5's breaking changes because Sonnet 5 and Opus 5 already rejected it). Every 5.x
model rejects manual thinking budgets and non-default sampling parameters, and takes all five
effort levels. An id not in the table is a 404 `not_found_error`, as on the real API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from emulators.claude_requests import ApiError
from emulators.claude_usage import TOKENIZER_4X, TOKENIZER_5X, Tokenizer

Effort = Literal["low", "medium", "high", "xhigh", "max"]
ThinkingType = Literal["adaptive", "enabled", "disabled", "between_tools"]

EFFORTS: Final[tuple[Effort, ...]] = ("low", "medium", "high", "xhigh", "max")
THINKING_TYPES: Final[tuple[ThinkingType, ...]] = ("adaptive", "between_tools", "disabled", "enabled")
MAX_OUTPUT_TOKENS_5X: Final = 128_000
MAX_OUTPUT_TOKENS_HAIKU_4_5: Final = 64_000


@dataclass(frozen=True)
class ModelSpec:
    """One model's request rules and defaults."""

    model_id: str
    thinks_by_default: bool  # adaptive thinking when the request has no `thinking` field
    thinking_types: frozenset[ThinkingType]  # accepted `thinking.type` values
    off_up_to_effort: Effort | None  # "disabled"/"between_tools" only at this effort or lower (None: any)
    default_effort: Effort | None  # None: the model rejects `output_config.effort`
    forced_tool_choice: bool  # tool_choice "any"/"tool" accepted
    assistant_prefill: bool  # a last message with role "assistant" accepted
    sampling_params: bool  # non-default temperature / top_p / top_k accepted
    min_cacheable_tokens: int
    tokenizer: Tokenizer
    max_output_tokens: int
    limit_class: str  # the rate-limit class it shares buckets with

    @property
    def manual_thinking(self) -> bool:
        """Whether `{"type": "enabled", "budget_tokens": N}` is the way to ask this model to think."""
        return "enabled" in self.thinking_types


def _five_x(
    model_id: str,
    *,
    limit_class: str,
    types: frozenset[ThinkingType],
    off_up_to: Effort | None,
    effort: Effort,
    forced_tool: bool,
    min_cache: int,
) -> ModelSpec:
    return ModelSpec(
        model_id=model_id,
        thinks_by_default=True,
        thinking_types=types,
        off_up_to_effort=off_up_to,
        default_effort=effort,
        forced_tool_choice=forced_tool,
        assistant_prefill=False,
        sampling_params=False,
        min_cacheable_tokens=min_cache,
        tokenizer=TOKENIZER_5X,
        max_output_tokens=MAX_OUTPUT_TOKENS_5X,
        limit_class=limit_class,
    )


_HAIKU_4_5 = ModelSpec(
    model_id="claude-haiku-4-5",
    thinks_by_default=False,
    thinking_types=frozenset({"enabled", "disabled"}),
    off_up_to_effort=None,
    default_effort=None,
    forced_tool_choice=True,
    assistant_prefill=True,
    sampling_params=True,
    min_cacheable_tokens=4096,
    tokenizer=TOKENIZER_4X,
    max_output_tokens=MAX_OUTPUT_TOKENS_HAIKU_4_5,
    limit_class="haiku-4-5",
)

MODELS: Final[Mapping[str, ModelSpec]] = {
    "claude-sonnet-5": _five_x(
        "claude-sonnet-5",
        limit_class="sonnet-5",
        types=frozenset({"adaptive", "disabled"}),
        off_up_to=None,
        effort="high",
        forced_tool=True,
        min_cache=1024,
    ),
    "claude-sonnet-5-5": _five_x(
        "claude-sonnet-5-5",
        limit_class="sonnet-5",
        types=frozenset({"adaptive", "between_tools"}),
        off_up_to="high",
        effort="high",
        forced_tool=False,
        min_cache=512,
    ),
    "claude-opus-5": _five_x(
        "claude-opus-5",
        limit_class="opus-5",
        types=frozenset({"adaptive", "disabled"}),
        off_up_to="high",
        effort="high",
        forced_tool=True,
        min_cache=512,
    ),
    "claude-opus-5-5": _five_x(
        "claude-opus-5-5",
        limit_class="opus-5",
        types=frozenset({"adaptive"}),
        off_up_to=None,
        effort="medium",
        forced_tool=False,
        min_cache=512,
    ),
    "claude-haiku-4-5": _HAIKU_4_5,
    "claude-haiku-4-5-20251001": _HAIKU_4_5,
}


def model_spec(model: str) -> ModelSpec:
    """The spec of `model`; an unknown id is the API's 404."""
    spec = MODELS.get(model)
    if spec is None:
        raise ApiError(404, f"model: {model}")
    return spec
