"""BudgetedClient: the Web API client every part shares, with every call inside the shared budget.

The budget is applied in `api_call`, which every method of the SDK's client goes through (uploads'
getUploadURLExternal and completeUploadExternal, streams' start, append and stop, Bolt's `say`),
so no call site can forget it. A call's priority comes from the context it is made in:

    with calls_at(Priority.PROGRESS):        # give way at once when there is no room
        await client.reactions_add(...)
    with calls_at(Priority.FINAL, wait_s=0.5):
        await client.chat_update(...)        # NoRoom after half a second without room

A call that gets no room raises `NoRoom`, a SlackApiError shaped like Slack's own 429 (error
"ratelimited", Retry-After: when the bucket would have room), so every caller that already copes
with a 429 copes with it; nothing was sent. Outside any `calls_at`, a call is NORMAL.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import FormData
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.budget.rates import Priority
from bot.budget.shared import UpdateBudget, wait_for

HTTP_TOO_MANY_REQUESTS = 429

_priority: contextvars.ContextVar[tuple[Priority, float | None]] = contextvars.ContextVar(
    "slack_call_priority", default=(Priority.NORMAL, None)
)


@contextmanager
def calls_at(priority: Priority, *, wait_s: float | None = None) -> Iterator[None]:
    """Web API calls made inside the block have `priority`, and wait at most `wait_s` for room
    (None: the priority's own wait, see `bot.budget.shared.wait_for`)."""
    token = _priority.set((priority, wait_s))
    try:
        yield
    finally:
        _priority.reset(token)


class NoRoom(SlackApiError):
    """A call the shared budget had no room for at its priority: not sent. Looks like Slack's 429."""

    def __init__(self, response: AsyncSlackResponse, method: str, room_in_s: float) -> None:
        message = f"no room in the Slack budget for {method} (room in {room_in_s:.2f} s)"
        super().__init__(message, response)  # type: ignore[no-untyped-call]  # unannotated in slack_sdk
        self.method = method
        self.room_in_s = room_in_s


class BudgetedClient(AsyncWebClient):
    """An AsyncWebClient whose calls spend from `budget` when one is attached (none until the store opens)."""

    budget: UpdateBudget | None = None

    async def api_call(
        self,
        api_method: str,
        *,
        http_verb: str = "POST",
        files: dict[str, Any] | None = None,
        data: dict[str, Any] | FormData | None = None,
        params: dict[str, Any] | None = None,
        json: dict[str, Any] | None = None,
        headers: dict[str, Any] | None = None,
        auth: dict[str, Any] | None = None,
    ) -> AsyncSlackResponse:
        """Take the call's token from the shared budget (or raise NoRoom), then make the call."""
        if self.budget is not None:
            priority, wait_s = _priority.get()
            channel = _channel(json, params, data)
            room_in_s = await self.budget.admit(api_method, channel, priority, wait_for(api_method, priority, wait_s))
            if room_in_s > 0:
                raise NoRoom(self._no_room(api_method, room_in_s), api_method, room_in_s)
        return await super().api_call(
            api_method,
            http_verb=http_verb,
            files=files,
            data=data,
            params=params,
            json=json,
            headers=headers,
            auth=auth,
        )

    def _no_room(self, api_method: str, room_in_s: float) -> AsyncSlackResponse:
        return AsyncSlackResponse(
            client=self,
            http_verb="POST",
            api_url=self.base_url + api_method,
            req_args={},
            data={"ok": False, "error": "ratelimited"},
            headers={"Retry-After": str(max(1, math.ceil(room_in_s)))},
            status_code=HTTP_TOO_MANY_REQUESTS,
        )


def _channel(*bodies: dict[str, Any] | FormData | None) -> str | None:
    """The conversation a call names (per-channel limits), wherever the SDK put its arguments."""
    for body in bodies:
        if isinstance(body, dict):
            found = body.get("channel") or body.get("channel_id")
            if found:
                return str(found)
    return None
