"""The bot's own HTTP servers: Slack's Events API endpoint (HTTP mode), health, readiness, metrics.

/slack/events   HTTP mode only; signature-verified by Bolt; 503 while draining, so Slack's
                retry goes to another instance (or to this one after its restart)
/healthz        liveness: the event loop answers (and in Socket Mode, the connection is up)
/readyz         readiness (`bot.readiness`): 200, or 503 with {"ok": false, "reason": ...}
/metrics        Prometheus, only where configured: on PORT when MATREC_METRICS_TOKEN is set
                (bearer token required), or on a listener of its own (MATREC_METRICS_BIND,
                `metrics_app`; the token is required there too when set); otherwise 404
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
METRICS_PATH = "/metrics"
_OK = 200
_UNAVAILABLE = 503

Check = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]


@dataclass(frozen=True)
class MetricsEndpoint:
    """What `/metrics` serves, and the bearer token it asks for (None: no token, own listener only)."""

    exposition: Callable[[], Awaitable[tuple[bytes, str]]]
    token: str | None = None

    def allows(self, request: web.Request) -> bool:
        """Whether the request carries the token (compared in constant time), or none is needed."""
        if self.token is None:
            return True
        given = request.headers.get("Authorization", "").encode()
        return hmac.compare_digest(given, f"Bearer {self.token}".encode())

    async def handle(self, request: web.Request) -> web.Response:
        """The metrics, or 401 without the token."""
        if not self.allows(request):
            return web.Response(status=401, text="bearer token required\n", headers={"WWW-Authenticate": "Bearer"})
        body, content_type = await self.exposition()
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response


def web_app(
    bolt: AsyncApp | None,
    health: Check,
    ready: Check | None = None,
    *,
    draining: Callable[[], bool] = lambda: False,
    metrics: MetricsEndpoint | None = None,
) -> web.Application:
    """`/healthz` always; `/readyz`, `/slack/events` and `/metrics` when what they serve is given."""
    app = web.Application()

    async def events(request: web.Request) -> web.Response:
        assert bolt is not None
        if draining():
            return web.json_response({"ok": False, "reason": "draining"}, status=_UNAVAILABLE)
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    if bolt is not None:
        app.router.add_post(EVENTS_PATH, events)
    app.router.add_get(HEALTH_PATH, _json_check(health))
    if ready is not None:
        app.router.add_get(READY_PATH, _json_check(ready))
    if metrics is not None:
        app.router.add_get(METRICS_PATH, metrics.handle)
    return app


def metrics_app(metrics: MetricsEndpoint) -> web.Application:
    """The separate metrics listener (MATREC_METRICS_BIND): `/metrics` alone."""
    app = web.Application()
    app.router.add_get(METRICS_PATH, metrics.handle)
    return app


def _json_check(check: Check) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(_request: web.Request) -> web.Response:
        ok, details = await check()
        return web.json_response({"ok": ok, **details}, status=_OK if ok else _UNAVAILABLE)

    return handle
