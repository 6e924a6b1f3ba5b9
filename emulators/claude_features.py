"""Per-model request rules of the Claude emulator: what a model rejects, and how a valid request thinks.

Each rejection is a 400 `invalid_request_error` worded like the API's. Messages quoted from
Anthropic's docs or from real API responses reported in public issues: the two "thinking.type ...
is not supported for this model" messages of Opus 5.5, "This model does not support the effort
parameter." and "This model does not support assistant message prefill. The conversation must end
with a user message.". The others follow the same pattern; the docs only describe them.

`check_features` returns how the request thinks (`ThinkingPlan`):

- adaptive: no `thinking` field (on a model that thinks by default) or `{"type": "adaptive"}`,
  at the request's effort or the model's default effort;
- manual: `{"type": "enabled", "budget_tokens": B}` on a model that takes budgets (Haiku 4.5);
- off: `{"type": "disabled"}`, `{"type": "between_tools"}` (no tools in the request, so only text),
  no `thinking` field on a model that does not think by default, or a forced tool call. Anthropic
  has never allowed thinking with a forced tool; the emulator ASSUMES a model that still accepts
  forced tools (Sonnet 5, Opus 5) answers them without thinking.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from emulators.claude_models import EFFORTS, THINKING_TYPES, Effort, ModelSpec
from emulators.claude_requests import ApiError

MIN_BUDGET_TOKENS: Final = 1024
DEFAULT_TEMPERATURE: Final = 1.0
SAMPLING_PARAMS: Final = ("temperature", "top_p", "top_k")
THINKING_DISPLAYS: Final = ("omitted", "summarized")

_USE_ADAPTIVE: Final = 'Use "thinking.type.adaptive" and "output_config.effort" to control thinking behavior.'

ThinkingMode = Literal["adaptive", "manual", "off"]
Display = Literal["omitted", "summarized"]


@dataclass(frozen=True)
class ThinkingPlan:
    """How a valid request thinks."""

    mode: ThinkingMode
    effort: Effort | None  # the effort in force (the model's default if none was sent); None: no effort
    budget_tokens: int | None = None  # manual thinking only
    display: Display = "omitted"


def check_features(body: Mapping[str, Any], spec: ModelSpec, *, forced_tool: bool) -> ThinkingPlan:
    """Reject what `spec` does not accept (400); otherwise say how the request thinks."""
    _check_max_tokens(body, spec)
    _check_sampling(body, spec)
    effort = _effort(body, spec)
    plan = _thinking(body, spec, effort)
    _check_tool_choice(body, spec, plan)
    _check_prefill(body, spec)
    return ThinkingPlan("off", effort) if forced_tool else plan


def _check_max_tokens(body: Mapping[str, Any], spec: ModelSpec) -> None:
    max_tokens = int(body["max_tokens"])
    if max_tokens > spec.max_output_tokens:
        raise ApiError(
            400,
            f"max_tokens: {max_tokens} > {spec.max_output_tokens}, which is the maximum allowed number of "
            f"output tokens for {spec.model_id}",
        )


def _check_sampling(body: Mapping[str, Any], spec: ModelSpec) -> None:
    if spec.sampling_params:
        return
    for name in SAMPLING_PARAMS:
        if name not in body or (name == "temperature" and body[name] == DEFAULT_TEMPERATURE):
            continue
        raise ApiError(
            400,
            f'"{name}" is not supported for this model: sampling parameters can only be left at their '
            'defaults. Use "output_config.effort" to control the response.',
        )


def _effort(body: Mapping[str, Any], spec: ModelSpec) -> Effort | None:
    output_config = body.get("output_config")
    sent = output_config.get("effort") if isinstance(output_config, dict) else None
    if sent is None:
        return spec.default_effort
    if sent not in EFFORTS:
        raise ApiError(400, "output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'")
    if spec.default_effort is None:
        raise ApiError(400, "This model does not support the effort parameter.")
    effort: Effort = sent
    return effort


def _thinking(body: Mapping[str, Any], spec: ModelSpec, effort: Effort | None) -> ThinkingPlan:
    config = body.get("thinking")
    if config is None:
        return ThinkingPlan("adaptive" if spec.thinks_by_default else "off", effort)
    if not isinstance(config, dict) or config.get("type") not in THINKING_TYPES:
        found = config.get("type") if isinstance(config, dict) else config
        expected = ", ".join(f"'{t}'" for t in THINKING_TYPES)
        raise ApiError(
            400, f"thinking: Input tag '{found}' found using 'type' does not match any of the expected tags: {expected}"
        )
    kind = config["type"]
    if kind not in spec.thinking_types:
        raise ApiError(400, _unsupported_thinking(kind, spec))
    if kind in ("disabled", "between_tools"):
        _check_off_effort(kind, spec, effort)
        return ThinkingPlan("off", effort)
    display: Display = "summarized" if config.get("display") == "summarized" else "omitted"
    if config.get("display") not in (None, *THINKING_DISPLAYS):
        raise ApiError(400, "thinking.display: Input should be 'summarized' or 'omitted'")
    if kind == "adaptive":
        return ThinkingPlan("adaptive", effort, display=display)
    return ThinkingPlan("manual", effort, _budget(config, body), display)


def _unsupported_thinking(kind: str, spec: ModelSpec) -> str:
    if spec.manual_thinking:
        return f'"thinking.type.{kind}" is not supported for this model. Use "thinking.type.enabled" with a budget.'
    if kind == "disabled" and "between_tools" in spec.thinking_types:
        return (
            '"thinking.type.disabled" is not supported for this model. Use "thinking.type.between_tools" to turn '
            'off up-front thinking, and "output_config.effort" to control thinking behavior.'
        )
    return f'"thinking.type.{kind}" is not supported for this model. {_USE_ADAPTIVE}'


def _check_off_effort(kind: str, spec: ModelSpec, effort: Effort | None) -> None:
    ceiling = spec.off_up_to_effort
    if ceiling is None or effort is None or EFFORTS.index(effort) <= EFFORTS.index(ceiling):
        return
    raise ApiError(
        400,
        f'"thinking.type.{kind}" is only supported with "output_config.effort" "{ceiling}" or lower for this '
        f'model, not "{effort}". To run at "{effort}", omit "thinking" or use "thinking.type.adaptive".',
    )


def _budget(config: Mapping[str, Any], body: Mapping[str, Any]) -> int:
    budget = config.get("budget_tokens")
    if not isinstance(budget, int) or isinstance(budget, bool):
        raise ApiError(400, "thinking.enabled.budget_tokens: Field required")
    if budget < MIN_BUDGET_TOKENS:
        message = f"Input should be greater than or equal to {MIN_BUDGET_TOKENS}"
        raise ApiError(400, f"thinking.enabled.budget_tokens: {message}")
    if budget >= int(body["max_tokens"]):
        raise ApiError(400, "`max_tokens` must be greater than `thinking.budget_tokens`.")
    return budget


def _check_tool_choice(body: Mapping[str, Any], spec: ModelSpec, plan: ThinkingPlan) -> None:
    choice = body.get("tool_choice")
    forced = choice.get("type") if isinstance(choice, dict) and choice.get("type") in ("any", "tool") else None
    if forced is None:
        return
    if not spec.forced_tool_choice:
        raise ApiError(
            400,
            f'"tool_choice.type.{forced}" is not supported for this model. Use "tool_choice.type.auto", or '
            'structured outputs ("output_config.format") for a guaranteed shape.',
        )
    if plan.mode == "manual":
        raise ApiError(400, "Thinking may not be enabled when tool_choice forces tool use.")


def _check_prefill(body: Mapping[str, Any], spec: ModelSpec) -> None:
    messages = body.get("messages")
    last = messages[-1] if isinstance(messages, list) and messages else None
    if spec.assistant_prefill or not isinstance(last, dict) or last.get("role") != "assistant":
        return
    raise ApiError(
        400, "This model does not support assistant message prefill. The conversation must end with a user message."
    )
