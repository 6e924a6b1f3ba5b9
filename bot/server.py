"""The bot's own HTTP server: Slack's Events API endpoint (HTTP mode) and a health check."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"


def web_app(bolt: AsyncApp | None, health: Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]) -> web.Application:
    """`/healthz` always; `/slack/events` (signature-verified by Bolt) when `bolt` is given."""
    app = web.Application()

    async def events(request: web.Request) -> web.Response:
        assert bolt is not None
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    async def healthz(_request: web.Request) -> web.Response:
        healthy, details = await health()
        return web.json_response({"ok": healthy, **details}, status=200 if healthy else 503)

    if bolt is not None:
        app.router.add_post(EVENTS_PATH, events)
    app.router.add_get(HEALTH_PATH, healthz)
    return app
