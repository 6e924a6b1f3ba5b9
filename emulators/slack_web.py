"""The Web API router: parses query/form/JSON requests, injects transport faults, authenticates, rate-limits."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

from emulators.slack_errors import ApiError
from emulators.slack_faults import TransportFaults
from emulators.slack_identity import AppIdentity, JsonDict
from emulators.slack_ratelimit import RateLimits
from emulators.slack_signal import StateSignal

TokenKind = Literal["bot", "app"]
Encoding = Literal["query", "form", "json", "multipart"]

_NEVER_SENT = 499  # nginx's "client closed request": a status only our own logs could show

# Structured fields that arrive as JSON strings when a client form-encodes them.
_JSON_STRING_FIELDS = ("blocks", "attachments", "chunks", "metadata", "unfurls")


@dataclass(frozen=True)
class ApiRequest:
    """One authenticated Web API call as a handler sees it."""

    method: str
    params: JsonDict
    token: str
    token_kind: TokenKind

    def required(self, name: str) -> str:
        """A required string argument; ApiError invalid_arguments if missing."""
        value = self.params.get(name)
        if value is None or value == "":
            messages = [f"[ERROR] missing required field: {name}"]
            raise ApiError("invalid_arguments", response_metadata={"messages": messages})
        return str(value)

    def optional(self, name: str) -> str | None:
        """An optional string argument."""
        value = self.params.get(name)
        return None if value is None else str(value)

    def flag(self, name: str) -> bool:
        """A boolean argument sent as true/false, 1/0 or "true"/"false"."""
        value = self.params.get(name)
        return value is True or str(value).lower() in ("1", "true")


Handler = Callable[[ApiRequest], Awaitable[JsonDict]]


@dataclass(frozen=True)
class MethodSpec:
    """How to serve one Web API method: its handler, token type and (any-of) required scopes."""

    handler: Handler
    token_kind: TokenKind = "bot"
    scopes: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ApiCall:
    """A recorded Web API call: arguments (token removed, JSON decoded), answer, `at` (monotonic s)."""

    method: str
    params: JsonDict
    token: str | None
    http_method: str
    encoding: Encoding
    status: int
    response: JsonDict
    at: float

    @property
    def ok(self) -> bool:
        """True if Slack answered ok."""
        return bool(self.response.get("ok"))

    @property
    def error(self) -> str | None:
        """The error code of a failed call."""
        error = self.response.get("error")
        return error if isinstance(error, str) else None


class WebApi:
    """Serves `/api/<method>` like slack.com/api: 200 with ok true/false, 429 when rate-limited."""

    def __init__(
        self,
        identity: AppIdentity,
        methods: Mapping[str, MethodSpec],
        limits: RateLimits,
        faults: TransportFaults,
        signal: StateSignal,
    ) -> None:
        self.identity = identity
        self.methods = methods
        self.limits = limits
        self.faults = faults
        self.signal = signal
        self.calls: list[ApiCall] = []

    async def handle(self, request: web.Request) -> web.Response:
        """Answer one Web API request and record it in `calls` (a transport fault is neither)."""
        method = request.match_info["method"]
        params, encoding, body_is_valid = await _read_params(request)
        if await self.faults.strike(method, request):
            return web.Response(status=_NEVER_SENT)  # the connection is gone: nothing reaches the client
        # Slack ignores a token inside a JSON body: JSON callers must send it as a bearer header.
        token = _bearer(request) or (request.query.get("token") if encoding == "json" else _pop_token(params))
        status, headers = 200, {"X-OAuth-Scopes": ",".join(sorted(self.identity.scopes))}
        try:
            if not body_is_valid:
                raise ApiError("invalid_json")
            body = await self._answer(method, params, token, headers)
        except ApiError as error:
            body = error.body()
        except _RateLimited as limited:
            status, body = 429, {"ok": False, "error": "ratelimited"}
            headers["Retry-After"] = str(limited.retry_after_s)
        self.calls.append(ApiCall(method, params, token, request.method, encoding, status, body, time.monotonic()))
        self.signal.changed()
        return web.json_response(body, status=status, headers=headers)

    async def _answer(self, method: str, params: JsonDict, token: str | None, headers: dict[str, str]) -> JsonDict:
        spec = self.methods.get(method)
        if spec is None:
            raise ApiError("unknown_method", req_method=method)
        if token is None:
            raise ApiError("not_authed")
        kind = self._token_kind(token)
        if kind != spec.token_kind:
            raise ApiError("not_allowed_token_type")
        if spec.scopes:
            headers["X-Accepted-OAuth-Scopes"] = ",".join(sorted(spec.scopes))
        if kind == "bot" and spec.scopes and not spec.scopes & self.identity.scopes:
            raise ApiError(
                "missing_scope",
                needed=",".join(sorted(spec.scopes)),
                provided=",".join(sorted(self.identity.scopes)),
            )
        retry_after = self.limits.check(method, _channel_of(params))
        if retry_after is not None:
            raise _RateLimited(retry_after)
        answer = await spec.handler(ApiRequest(method, params, token, kind))
        return {"ok": True, **answer}

    def _token_kind(self, token: str) -> TokenKind:
        if token == self.identity.bot_token:
            return "bot"
        if token == self.identity.app_token:
            return "app"
        raise ApiError("invalid_auth")


class _RateLimited(Exception):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(retry_after_s)
        self.retry_after_s = retry_after_s


async def _read_params(request: web.Request) -> tuple[JsonDict, Encoding, bool]:
    params: JsonDict = dict(request.query.items())
    encoding: Encoding = "query"
    if request.method == "POST" and request.body_exists:
        if request.content_type == "application/json":
            try:
                body: Any = await request.json()
            except json.JSONDecodeError:
                body = None
            if not isinstance(body, dict):
                return params, "json", False
            params.update(body)
            encoding = "json"
        elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await request.post()
            for key, value in form.items():
                params[key] = value.file.read() if isinstance(value, web.FileField) else value
            encoding = "form" if request.content_type.startswith("application/") else "multipart"
    for key in _JSON_STRING_FIELDS:
        if isinstance(params.get(key), str):
            # Undecodable values stay strings: the handler answers invalid_blocks_format and the like.
            with contextlib.suppress(json.JSONDecodeError):
                params[key] = json.loads(params[key])
    return params, encoding, True


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return None
    return header.removeprefix("Bearer ").strip() or None


def _pop_token(params: JsonDict) -> str | None:
    token = params.pop("token", None)
    return str(token) if token else None


def _channel_of(params: JsonDict) -> str | None:
    channel = params.get("channel") or params.get("channel_id")
    return str(channel) if channel else None
