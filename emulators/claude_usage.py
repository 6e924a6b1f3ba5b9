"""Token counts and prompt caching for the Claude emulator: deterministic and roughly realistic.

Tokens: a `Tokenizer` per model generation. The 4.x tokenizer (Haiku 4.5) counts about 4 characters
of text per token (system, messages, tools and the output schema); the 5.x tokenizer counts the same
text as about 30% more tokens (Anthropic's Sonnet 5 migration guide). An image costs width x height
/ 750 tokens on both (the tokenizer change is about text). An answer counts like any other text.

Caching: a block carrying `cache_control` ends a cacheable prefix, in the order tools -> output
schema -> system -> messages (a top-level `cache_control` marks the last block). A prefix is keyed
by a hash of its canonical JSON (with the model, output format and tool choice). Prefixes shorter
than the model's minimum cacheable length (`PromptCache.lookup`'s `min_tokens`) are not cached. A
request reads the longest prefix that is readable and writes the rest up to its last breakpoint;
what it writes becomes readable only when it starts answering (`PromptCache.commit`), then lives
for the TTL, refreshed by each read.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

CHARS_PER_TOKEN_4X: Final = 4.0
TOKENS_5X_PER_TOKEN_4X: Final = 1.3  # "about 30% more tokens" for the same text
IMAGE_PIXELS_PER_TOKEN: Final = 750
CACHE_TTL_S: Final[Mapping[str, float]] = {"5m": 300.0, "1h": 3600.0}

Ttl = Literal["5m", "1h"]


@dataclass(frozen=True)
class Tokenizer:
    """How many characters of text make one token, for one model generation."""

    chars_per_token: float

    def text_tokens(self, text: str) -> int:
        """Tokens for `text`, rounded up."""
        return math.ceil(len(text) / self.chars_per_token)

    def output_tokens(self, answer_text: str) -> int:
        """Tokens for an answer; never zero, like the API's."""
        return max(1, self.text_tokens(answer_text))

    def chars_for(self, tokens: int) -> int:
        """How many characters `tokens` tokens hold."""
        return math.floor(tokens * self.chars_per_token)


TOKENIZER_4X: Final = Tokenizer(CHARS_PER_TOKEN_4X)
TOKENIZER_5X: Final = Tokenizer(CHARS_PER_TOKEN_4X / TOKENS_5X_PER_TOKEN_4X)


def image_tokens(size: tuple[int, int]) -> int:
    """Tokens for an image of `size` (width, height) pixels."""
    return math.ceil(size[0] * size[1] / IMAGE_PIXELS_PER_TOKEN)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Breakpoint:
    """The end of one cacheable prefix."""

    key: str
    tokens: int
    ttl: Ttl


@dataclass(frozen=True)
class PromptLayout:
    """A request's input size and its cacheable prefixes, shortest first."""

    total_tokens: int
    breakpoints: tuple[Breakpoint, ...]


def _ttl(marker: Any) -> Ttl:
    return "1h" if isinstance(marker, dict) and marker.get("ttl") == "1h" else "5m"


def _blocks(body: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """(role, block) pairs in prefix order: tools, system, then message content."""
    for tool in body.get("tools") or []:
        yield "tools", tool
    system = body.get("system")
    if isinstance(system, str):
        yield "system", {"type": "text", "text": system}
    elif isinstance(system, list):
        for block in system:
            yield "system", block
    for index, message in enumerate(body.get("messages") or []):
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        role = f"{index}:{message.get('role')}"
        if isinstance(content, str):
            yield role, {"type": "text", "text": content}
        elif isinstance(content, list):
            for block in content:
                yield role, block


def layout(
    body: Mapping[str, Any], image_sizes: Sequence[tuple[int, int]], tokenizer: Tokenizer = TOKENIZER_5X
) -> PromptLayout:
    """Count a request's input tokens with `tokenizer` and find its cache breakpoints.

    `image_sizes` are the decoded sizes of the top-level image blocks, in request order.
    """
    text_tokens = tokenizer.text_tokens
    output_config = body.get("output_config")
    output_format = output_config.get("format") if isinstance(output_config, dict) else None
    running = hashlib.sha256(_canonical([body.get("model"), output_format, body.get("tool_choice")]).encode())
    tokens = text_tokens(_canonical(output_format)) if output_format else 0
    images = iter(image_sizes)
    blocks = list(_blocks(body))
    auto_cache = body.get("cache_control")
    breakpoints: list[Breakpoint] = []
    for position, (role, block) in enumerate(blocks):
        if not isinstance(block, dict):
            continue
        marker = block.get("cache_control")
        if position == len(blocks) - 1 and marker is None:
            marker = auto_cache
        content = {key: value for key, value in block.items() if key != "cache_control"}
        running.update(_canonical([role, content]).encode())
        if block.get("type") == "text" and isinstance(block.get("text"), str) and role != "tools":
            tokens += text_tokens(block["text"])
        elif block.get("type") == "image" and role != "tools":
            size = next(images, None)
            tokens += image_tokens(size) if size else text_tokens(_canonical(content))
        else:
            tokens += text_tokens(_canonical(content))
        if isinstance(marker, dict):
            breakpoints.append(Breakpoint(running.copy().hexdigest(), tokens, _ttl(marker)))
    return PromptLayout(tokens, tuple(breakpoints))


@dataclass(frozen=True)
class CacheUse:
    """How a request's input splits into uncached, cache-read and cache-written tokens."""

    input_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    write_ttl: Ttl
    pending: tuple[Breakpoint, ...]

    @property
    def rate_limited_input_tokens(self) -> int:
        """What counts toward ITPM: uncached input and cache writes, not cache reads."""
        return self.input_tokens + self.cache_write_tokens

    def usage(self, output_tokens: int, thinking_tokens: int = 0) -> dict[str, Any]:
        """The API's `usage` object for this request; `output_tokens` counts thinking and answer."""
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_write_tokens,
            "cache_read_input_tokens": self.cache_read_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.cache_write_tokens if self.write_ttl == "5m" else 0,
                "ephemeral_1h_input_tokens": self.cache_write_tokens if self.write_ttl == "1h" else 0,
            },
            "output_tokens": output_tokens,
            "output_tokens_details": {"thinking_tokens": thinking_tokens},
            "service_tier": "standard",
        }


class PromptCache:
    """Cached prefixes by key, each readable until its expiry (time.monotonic seconds)."""

    def __init__(self) -> None:
        self._expiry: dict[str, float] = {}

    def lookup(self, prompt: PromptLayout, now: float, *, min_tokens: int) -> CacheUse:
        """Split `prompt` into read / write / uncached tokens; refreshes what it reads.

        Prefixes shorter than `min_tokens` (the model's minimum cacheable length) are not cached.
        """
        use, read = self._split(prompt, now, min_tokens)
        if read is not None:
            self._expiry[read.key] = now + CACHE_TTL_S[read.ttl]
        return use

    def peek(self, prompt: PromptLayout, now: float, *, min_tokens: int) -> CacheUse:
        """What `lookup` would answer, without refreshing anything (a request that may be refused)."""
        return self._split(prompt, now, min_tokens)[0]

    def _split(self, prompt: PromptLayout, now: float, min_tokens: int) -> tuple[CacheUse, Breakpoint | None]:
        eligible = [bp for bp in prompt.breakpoints if bp.tokens >= min_tokens]
        readable = [bp for bp in eligible if self._expiry.get(bp.key, -math.inf) > now]
        read = max(readable, key=lambda bp: bp.tokens, default=None)
        read_tokens = read.tokens if read else 0
        last = eligible[-1] if eligible else None
        write_tokens = last.tokens - read_tokens if last and last.tokens > read_tokens else 0
        pending = tuple(bp for bp in eligible if bp.tokens > read_tokens)
        use = CacheUse(
            input_tokens=prompt.total_tokens - read_tokens - write_tokens,
            cache_read_tokens=read_tokens,
            cache_write_tokens=write_tokens,
            write_ttl=last.ttl if last else "5m",
            pending=pending,
        )
        return use, read

    def commit(self, written: Sequence[Breakpoint], now: float) -> None:
        """Make prefixes a request wrote readable: it has started answering."""
        for bp in written:
            self._expiry[bp.key] = max(self._expiry.get(bp.key, -math.inf), now + CACHE_TTL_S[bp.ttl])

    def clear(self) -> None:
        """Forget every cached prefix."""
        self._expiry.clear()

    def __len__(self) -> int:
        return len(self._expiry)
