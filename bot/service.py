"""The composition root: check the configuration, build every part once, serve until told to stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import build_app
from bot.consultation import Consultant
from bot.files import FileFetcher
from bot.server import web_app
from bot.settings import BotSettings
from bot.store import Store
from matrec.claude import Claude
from matrec.engine import Engine
from matrec.errors import ConfigError
from matrec.settings import EngineSettings

log = logging.getLogger(__name__)

RATE_LIMIT_RETRIES = 5
SHUTDOWN_GRACE_S = 60.0
PRUNE_INTERVAL_S = 3600.0


class StartupError(Exception):
    """The bot cannot start; the message names the setting to fix, in one line."""


@dataclass(frozen=True)
class Running:
    """What a started bot exposes (tests use it to find the HTTP port)."""

    mode: str
    base_url: str | None
    bot_user_id: str
    consultant: Consultant


def check(settings: BotSettings) -> tuple[str, str | None]:
    """The bot token and (Socket Mode) app token, or a StartupError naming what is missing."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else ""
    if not token:
        raise StartupError("SLACK_BOT_TOKEN is not set: export SLACK_BOT_TOKEN=xoxb-... (OAuth & Permissions page)")
    if not token.startswith("xoxb-"):
        raise StartupError("SLACK_BOT_TOKEN must be a bot token starting with xoxb-")
    if settings.socket_mode:
        app_token = settings.slack_app_token.get_secret_value() if settings.slack_app_token else ""
        if not app_token.startswith("xapp-"):
            raise StartupError("SLACK_APP_TOKEN must be an app-level token starting with xapp- (connections:write)")
        return token, app_token
    if settings.slack_signing_secret is None or not settings.slack_signing_secret.get_secret_value():
        raise StartupError(
            "SLACK_SIGNING_SECRET is not set: HTTP mode needs it (Basic Information page), "
            "or set SLACK_APP_TOKEN for Socket Mode"
        )
    return token, None


async def _authenticate(client: AsyncWebClient, settings: BotSettings, app_token: str | None) -> str:
    try:
        auth = await client.auth_test()
    except SlackApiError as error:
        raise StartupError(f"SLACK_BOT_TOKEN was rejected by Slack ({error.response.get('error')})") from None
    except aiohttp.ClientError as error:
        raise StartupError(f"cannot reach Slack at SLACK_API_URL={settings.slack_api_url} ({error})") from None
    if app_token is not None:
        try:
            await client.apps_connections_open(app_token=app_token)
        except SlackApiError as error:
            raise StartupError(f"SLACK_APP_TOKEN was rejected by Slack ({error.response.get('error')})") from None
    return str(auth["user_id"])


@asynccontextmanager
async def started(settings: BotSettings, engine_settings: EngineSettings) -> AsyncIterator[Running]:
    """Start the bot; leaving the block stops it gracefully (running consultations finish first)."""
    token, app_token = check(settings)
    async with AsyncExitStack() as stack:
        client = AsyncWebClient(token=token, base_url=settings.slack_api_url)
        client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES))
        bot_user_id = await _authenticate(client, settings, app_token)
        try:
            claude = Claude.from_settings(engine_settings)
        except ConfigError as error:
            raise StartupError(str(error)) from None
        stack.push_async_callback(claude.aclose)
        store = await Store.open(settings.database_url)
        stack.push_async_callback(store.close)
        # One SQLite process owns everything in flight; replicas sharing PostgreSQL only take over
        # work idle for longer than a live consultation can be.
        shared = not settings.database_url.startswith("sqlite")
        idle_for_s = engine_settings.run_timeout_s + SHUTDOWN_GRACE_S if shared else 0.0
        if interrupted := await store.mark_interrupted(idle_for_s=idle_for_s):
            log.warning("%d consultations were interrupted by a restart", interrupted)
        pruner = asyncio.create_task(_prune_forever(store, settings.dedupe_retention_s))
        stack.callback(pruner.cancel)
        session = await stack.enter_async_context(aiohttp.ClientSession())
        fetcher = FileFetcher(
            client,
            session,
            token=token,
            api_url=settings.slack_api_url,
            max_bytes=engine_settings.max_image_bytes,
        )
        engine = Engine(claude, engine_settings)
        consultant = Consultant(engine=engine, store=store, client=client, fetcher=fetcher, settings=settings)
        stack.push_async_callback(_drain, consultant)  # runs after the event sources below are closed
        app = build_app(settings, client, consultant, bot_user_id)
        handler = AsyncSocketModeHandler(app, app_token, web_client=client) if app_token else None

        async def health() -> tuple[bool, dict[str, Any]]:
            connected = await handler.client.is_connected() if handler else True
            return connected, {"mode": "socket" if handler else "http", "running": len(consultant.running)}

        runner = web.AppRunner(web_app(None if handler else app, health), access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        host, port = runner.addresses[0][:2]
        base_url = f"http://{host}:{port}"
        if handler is not None:
            await handler.connect_async()  # type: ignore[no-untyped-call]  # unannotated in slack_bolt
            stack.push_async_callback(handler.close_async)
        mode = "socket" if handler else "http"
        log.info("matrec bot %s started in %s mode (health at %s/healthz)", bot_user_id, mode, base_url)
        yield Running(mode, base_url, bot_user_id, consultant)


async def _prune_forever(store: Store, retention_s: float) -> None:
    """Forget old dedupe keys now and then (they must outlive Slack's retries, not the bot)."""
    while True:
        removed = await store.prune_dedupe(retention_s)
        log.debug("pruned %d dedupe keys", removed)
        await asyncio.sleep(PRUNE_INTERVAL_S)


async def _drain(consultant: Consultant) -> None:
    try:
        async with asyncio.timeout(SHUTDOWN_GRACE_S):
            await consultant.drain()
    except TimeoutError:
        log.warning("stopping with consultations still running after %g s", SHUTDOWN_GRACE_S)


async def serve(
    settings: BotSettings,
    engine_settings: EngineSettings,
    stop: asyncio.Event,
    on_started: Callable[[Running], None] | None = None,
) -> None:
    """Run until `stop` is set."""
    async with started(settings, engine_settings) as running:
        if on_started is not None:
            on_started(running)
        await stop.wait()
