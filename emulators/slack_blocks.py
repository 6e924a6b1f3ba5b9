"""Slack's message-size and Block Kit limits, checked the way chat.postMessage/chat.update check them."""

from __future__ import annotations

import json
from typing import Any

from emulators.slack_errors import ApiError
from emulators.slack_identity import JsonDict

POST_TEXT_MAX_CHARS = 40_000
UPDATE_TEXT_MAX_CHARS = 4_000
MAX_BLOCKS_PER_MESSAGE = 50
SECTION_TEXT_MAX_CHARS = 3_000
SECTION_FIELDS_MAX = 10
SECTION_FIELD_TEXT_MAX_CHARS = 2_000
HEADER_TEXT_MAX_CHARS = 150
MARKDOWN_BLOCK_MAX_CHARS = 12_000
CONTEXT_ELEMENTS_MAX = 10
ACTIONS_ELEMENTS_MAX = 25
BLOCK_ID_MAX_CHARS = 255
IMAGE_ALT_TEXT_MAX_CHARS = 2_000

KNOWN_BLOCK_TYPES = frozenset(
    {
        "actions",
        "context",
        "context_actions",
        "divider",
        "file",
        "header",
        "image",
        "input",
        "markdown",
        "rich_text",
        "section",
        "table",
        "video",
        "plan",
        "task_card",
        "call",
    }
)


def parse_blocks(value: Any) -> list[JsonDict] | None:
    """Blocks from a request: a list, or a JSON string of one (form encoding); None if absent."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ApiError("invalid_blocks_format") from None
    if not isinstance(value, list) or not all(isinstance(b, dict) for b in value):
        raise ApiError("invalid_blocks_format")
    return value


def check_message(
    text: str | None, blocks: list[JsonDict] | None, *, text_max_chars: int, require_content: bool = True
) -> None:
    """Raise the ApiError Slack answers for this text and these blocks, if any."""
    if require_content and not text and not blocks:
        raise ApiError("no_text")
    if text is not None and len(text) > text_max_chars:
        raise ApiError("msg_too_long")
    if blocks is not None:
        errors = block_errors(blocks)
        if errors:
            messages = [f"[ERROR] {e}" for e in errors]
            raise ApiError("invalid_blocks", errors=errors, response_metadata={"messages": messages})


def block_errors(blocks: list[JsonDict], *, max_blocks: int = MAX_BLOCKS_PER_MESSAGE) -> list[str]:
    """Slack-style error strings (with json-pointers) for every limit these blocks break."""
    errors: list[str] = []
    if len(blocks) > max_blocks:
        errors.append(f"must be less than {max_blocks + 1} items [json-pointer:/blocks]")
    markdown_total = 0
    for i, block in enumerate(blocks):
        where = f"/blocks/{i}"
        kind = block.get("type")
        if kind not in KNOWN_BLOCK_TYPES:
            errors.append(f"unsupported type: {kind} [json-pointer:{where}/type]")
            continue
        block_id = block.get("block_id")
        if isinstance(block_id, str) and len(block_id) > BLOCK_ID_MAX_CHARS:
            errors.append(_too_long(BLOCK_ID_MAX_CHARS, f"{where}/block_id"))
        if kind == "section":
            errors += _section_errors(block, where)
        elif kind == "header":
            errors += _text_errors(block.get("text"), f"{where}/text", HEADER_TEXT_MAX_CHARS, plain_only=True)
        elif kind == "markdown":
            body = block.get("text")
            if not isinstance(body, str) or not body:
                errors.append(f"must be more than 0 characters [json-pointer:{where}/text]")
            else:
                markdown_total += len(body)
                if len(body) > MARKDOWN_BLOCK_MAX_CHARS:
                    errors.append(_too_long(MARKDOWN_BLOCK_MAX_CHARS, f"{where}/text"))
        elif kind == "context":
            errors += _count_errors(block.get("elements"), f"{where}/elements", CONTEXT_ELEMENTS_MAX)
        elif kind == "actions":
            errors += _count_errors(block.get("elements"), f"{where}/elements", ACTIONS_ELEMENTS_MAX)
        elif kind == "image":
            alt = block.get("alt_text")
            if not isinstance(alt, str) or len(alt) > IMAGE_ALT_TEXT_MAX_CHARS:
                errors.append(
                    f"must provide alt_text of at most {IMAGE_ALT_TEXT_MAX_CHARS} characters"
                    f" [json-pointer:{where}/alt_text]"
                )
    if markdown_total > MARKDOWN_BLOCK_MAX_CHARS:
        errors.append(
            f"cumulative markdown block text must be at most {MARKDOWN_BLOCK_MAX_CHARS} characters"
            " [json-pointer:/blocks]"
        )
    return errors


def _section_errors(block: JsonDict, where: str) -> list[str]:
    text, fields = block.get("text"), block.get("fields")
    if text is None and not fields:
        return [f"must provide either text or fields [json-pointer:{where}]"]
    errors: list[str] = []
    if text is not None:
        errors += _text_errors(text, f"{where}/text", SECTION_TEXT_MAX_CHARS)
    if fields is not None:
        errors += _count_errors(fields, f"{where}/fields", SECTION_FIELDS_MAX)
        for j, item in enumerate(fields if isinstance(fields, list) else []):
            errors += _text_errors(item, f"{where}/fields/{j}", SECTION_FIELD_TEXT_MAX_CHARS)
    return errors


def _text_errors(obj: Any, where: str, max_chars: int, *, plain_only: bool = False) -> list[str]:
    allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if not isinstance(obj, dict) or obj.get("type") not in allowed:
        return [f"must be a text object of type {' or '.join(allowed)} [json-pointer:{where}]"]
    body = obj.get("text")
    if not isinstance(body, str) or not body:
        return [f"must be more than 0 characters [json-pointer:{where}/text]"]
    if len(body) > max_chars:
        return [_too_long(max_chars, f"{where}/text")]
    return []


def _count_errors(items: Any, where: str, max_items: int) -> list[str]:
    if not isinstance(items, list) or not items:
        return [f"must provide at least 1 item [json-pointer:{where}]"]
    if len(items) > max_items:
        return [f"must be less than {max_items + 1} items [json-pointer:{where}]"]
    return []


def _too_long(max_chars: int, where: str) -> str:
    return f"must be less than {max_chars + 1} characters [json-pointer:{where}]"
