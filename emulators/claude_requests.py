"""Request checks of the Claude emulator, failing the way the Messages API does.

Each failure is an `ApiError` whose body has the API's shape:
`{"type": "error", "error": {"type": ..., "message": ...}, "request_id": ...}`.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import warnings
from collections.abc import Mapping
from typing import Any, Final

from PIL import Image, UnidentifiedImageError

MAX_REQUEST_BYTES: Final = 32 * 1024 * 1024
MAX_IMAGE_BYTES: Final = 5 * 1024 * 1024
MAX_IMAGE_EDGE_PX: Final = 8000
# Anthropic's vision docs: at most 100 images per request (200k-context models); with more than
# 20 images in one request, each must be at most 2000x2000 px.
MAX_IMAGES_PER_REQUEST: Final = 100
MANY_IMAGES_THRESHOLD: Final = 20
MANY_IMAGES_MAX_EDGE_PX: Final = 2000
TOOL_NAME: Final = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
TOOL_NAME_PATTERN_TEXT: Final = "^[a-zA-Z0-9_-]{1,128}$"
IMAGE_FORMATS: Final[Mapping[str, str]] = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/gif": "GIF",
    "image/webp": "WEBP",
}
ERROR_TYPES: Final[Mapping[int, str]] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    529: "overloaded_error",
}


class ApiError(Exception):
    """An API error response: status, error type, message, extra headers and optional details."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type or ERROR_TYPES.get(status, "api_error")
        self.headers = dict(headers or {})
        self.details = dict(details) if details else None

    def body(self, request_id: str) -> dict[str, Any]:
        """The JSON error body."""
        error: dict[str, Any] = {"type": self.error_type, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"type": "error", "error": error, "request_id": request_id}


def check_headers(headers: Mapping[str, str], api_key: str) -> None:
    """Authentication (Bearer or x-api-key) and the anthropic-version header."""
    authorization = headers.get("authorization", "")
    key = headers.get("x-api-key") or authorization.removeprefix("Bearer ").strip()
    if not key:
        raise ApiError(401, "x-api-key header is required")
    if key != api_key:
        raise ApiError(401, "invalid x-api-key")
    if not headers.get("anthropic-version"):
        raise ApiError(400, "anthropic-version: header is required")


def parse_body(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object."""
    if len(raw) > MAX_REQUEST_BYTES:
        raise ApiError(413, f"Request exceeds the maximum allowed number of bytes ({MAX_REQUEST_BYTES}).")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ApiError(400, "There was an issue with your request body: invalid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Input should be a valid dictionary or object to extract fields from")
    return body


def check_body(body: Mapping[str, Any]) -> list[tuple[int, int]]:
    """Minimal Messages validation; returns the decoded (width, height) of each top-level image."""
    for field in ("model", "max_tokens", "messages"):
        if field not in body:
            raise ApiError(400, f"{field}: Field required")
    if not isinstance(body["model"], str) or not body["model"]:
        raise ApiError(400, "model: Input should be a valid string")
    max_tokens = body["max_tokens"]
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise ApiError(400, "max_tokens: Input should be greater than or equal to 1")
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages: at least one message is required")
    check_tools(body.get("tools"))
    sizes: list[tuple[int, int]] = []
    where: list[str] = []
    for index, message in enumerate(messages):
        found = _check_message(message, f"messages.{index}")
        sizes.extend(size for size, _ in found)
        where.extend(path for _, path in found)
    _check_image_count(sizes, where)
    return sizes


def _check_image_count(sizes: list[tuple[int, int]], where: list[str]) -> None:
    if len(sizes) > MAX_IMAGES_PER_REQUEST:
        raise ApiError(400, f"messages: Too many images in request: {len(sizes)} > {MAX_IMAGES_PER_REQUEST} maximum.")
    if len(sizes) <= MANY_IMAGES_THRESHOLD:
        return
    for size, path in zip(sizes, where, strict=True):
        if max(size) > MANY_IMAGES_MAX_EDGE_PX:
            raise _too_many_pixels(path, MANY_IMAGES_MAX_EDGE_PX, many=True)


def check_tools(tools: Any) -> None:
    """Custom tool definitions as the API validates them: a name of 1-128 of [a-zA-Z0-9_-], unique,
    and an `input_schema` that is a JSON schema object."""
    if tools is None:
        return
    if not isinstance(tools, list):
        raise ApiError(400, "tools: Input should be a valid list")
    names: set[str] = set()
    for index, tool in enumerate(tools):
        path = f"tools.{index}.custom"
        if not isinstance(tool, dict):
            raise ApiError(400, f"tools.{index}: Input should be a valid dictionary")
        name = tool.get("name")
        if not isinstance(name, str):
            raise ApiError(400, f"{path}.name: Field required")
        if not TOOL_NAME.match(name):
            raise ApiError(400, f"{path}.name: String should match pattern '{TOOL_NAME_PATTERN_TEXT}'")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise ApiError(400, f"{path}.input_schema: Field required")
        if schema.get("type") != "object":
            raise ApiError(400, f"{path}.input_schema.type: Input should be 'object'")
        if name in names:
            raise ApiError(400, "tools: Tool names must be unique.")
        names.add(name)


def _check_message(message: Any, path: str) -> list[tuple[tuple[int, int], str]]:
    if not isinstance(message, dict):
        raise ApiError(400, f"{path}: Input should be a valid dictionary")
    if message.get("role") not in ("user", "assistant"):
        raise ApiError(400, f"{path}.role: Input should be 'user' or 'assistant'")
    content = message.get("content")
    if isinstance(content, str):
        return []
    if not isinstance(content, list):
        raise ApiError(400, f"{path}.content: Input should be a valid string or list")
    sizes: list[tuple[tuple[int, int], str]] = []
    for index, block in enumerate(content):
        where = f"{path}.content.{index}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise ApiError(400, f"{where}.type: Field required")
        if block["type"] == "text" and not isinstance(block.get("text"), str):
            raise ApiError(400, f"{where}.text: Field required")
        if block["type"] == "image":
            sizes.append((check_image(block, where), where))
    return sizes


def check_image(block: Mapping[str, Any], path: str) -> tuple[int, int]:
    """Decode a base64 image block; its bytes must be the declared type, within the size limits."""
    source = block.get("source")
    if not isinstance(source, dict):
        raise ApiError(400, f"{path}.image.source: Field required")
    if source.get("type") != "base64":
        raise ApiError(400, f"{path}.image.source.type: the emulator accepts only base64 image sources")
    media_type = str(source.get("media_type"))
    if media_type not in IMAGE_FORMATS:
        raise ApiError(
            400,
            f"{path}.image.source.base64.media_type: Input should be "
            "'image/jpeg', 'image/png', 'image/gif' or 'image/webp'",
        )
    try:
        raw = base64.b64decode(str(source.get("data", "")), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"{path}.image.source.base64.data: Invalid base64 data") from None
    if len(raw) > MAX_IMAGE_BYTES:
        raise ApiError(
            400,
            f"{path}.image.source.base64: image exceeds 5 MB maximum: {len(raw)} bytes > {MAX_IMAGE_BYTES} bytes",
        )
    actual, size = _identify(raw, path)
    if actual != IMAGE_FORMATS[media_type]:
        shown = f"image/{actual.lower()}" if actual in IMAGE_FORMATS.values() else actual
        raise ApiError(
            400,
            f"{path}.image.source.base64.data: The image was specified using the {media_type} media type, "
            f"but the image appears to be a {shown} image",
        )
    if max(size) > MAX_IMAGE_EDGE_PX:
        raise _too_many_pixels(path)
    return size


def _identify(raw: bytes, path: str) -> tuple[str, tuple[int, int]]:
    with warnings.catch_warnings():
        # The emulator enforces its own pixel limit; Pillow's bomb warning must not reach pytest.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(raw)) as image:
                found, size = str(image.format), image.size
                image.verify()
        except Image.DecompressionBombError:
            raise _too_many_pixels(path) from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            raise ApiError(400, f"{path}.image.source.base64.data: Could not process image") from None
    return found, (int(size[0]), int(size[1]))


def _too_many_pixels(path: str, limit_px: int = MAX_IMAGE_EDGE_PX, *, many: bool = False) -> ApiError:
    what = "size for many-image requests" if many else "size"
    return ApiError(
        400,
        f"{path}.image.source.base64.data: At least one of the image dimensions exceed max allowed {what}: "
        f"{limit_px} pixels",
        details={
            "error_code": "image_dimensions_too_large",
            "max_side_length_pixels": limit_px,
            "paths": [path],
        },
    )
