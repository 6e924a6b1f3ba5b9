"""The composition root: check the configuration, build every part once, serve until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.listener.async_listener_start_handler import AsyncListenerStartHandler
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.web.async_client import AsyncWebClient

from bot.access import Access
from bot.app import Parts, build_app
from bot.budget import BudgetedClient, SlackRates, UpdateBudget
from bot.claude_budget import StoreBudget
from bot.consultation import Consultant, JobRunner, QueueNotices, Resumer
from bot.consultation.rerun import Reruns
from bot.conversation.answer import Answerer
from bot.conversation.followups import FollowUps
from bot.files import FileFetcher
from bot.finals import Finals
from bot.interactive import Deps, register
from bot.memory import Memory
from bot.metrics import Metrics
from bot.pointers import Pointers
from bot.readiness import Phase, Readiness
from bot.server import MetricsEndpoint, metrics_app, web_app
from bot.settings import BotSettings
from bot.spend import SpendGuard, unpriced_cap
from bot.store import Store
from bot.store.urls import SqliteDatabase, parse_database_url
from bot.streaming import StreamLimits
from matrec.claude import Claude
from matrec.engine import Engine
from matrec.errors import ConfigError
from matrec.limiter import Limiter
from matrec.settings import EngineSettings

log = logging.getLogger(__name__)

RATE_LIMIT_RETRIES = 5
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
    resumer: Resumer
    followups: FollowUps | None = None
    metrics_url: str | None = None  # the separate /metrics listener's (MATREC_METRICS_BIND)


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
    """Start the bot; leaving the block stops it gracefully (see `_shut_down`)."""
    token, app_token = check(settings)
    if (unpriced := unpriced_cap(settings, engine_settings)) is not None:
        raise StartupError(unpriced)
    async with AsyncExitStack() as stack:
        metrics = Metrics()
        client = slack_client(token, settings.slack_api_url, metrics)
        bot_user_id = await _authenticate(client, settings, app_token)
        try:
            claude = Claude.from_settings(engine_settings)
        except ConfigError as error:
            raise StartupError(str(error)) from None
        stack.push_async_callback(claude.aclose)
        store = await Store.open(settings.database_url)
        stack.push_async_callback(store.close)
        owner = instance_name()
        # Claude's limits are the organisation's: every instance on this database shares them.
        claude_budget = StoreBudget.from_settings(
            store, engine_settings, owner=owner, database_url=settings.database_url
        )
        await claude_budget.start()
        stack.push_async_callback(claude_budget.aclose)  # after the consultations drain, before the store closes
        budget = await _share_budget(stack, client, store, settings)
        spend = SpendGuard.from_settings(settings, engine_settings, store, client)
        if spend is not None:
            metrics.watch_budget(spend)
        pruner = asyncio.create_task(_prune_forever(store, settings.dedupe_retention_s))
        stack.push_async_callback(_cancelled, pruner)
        session = await stack.enter_async_context(aiohttp.ClientSession())
        fetcher = FileFetcher(
            client, session, token=token, api_url=settings.slack_api_url, max_bytes=engine_settings.max_image_bytes
        )
        engine = Engine(claude, engine_settings, Limiter(engine_settings.concurrency, claude_budget))
        finals = Finals()
        access = Access(client)
        memory = Memory(store, access, client, bot_user_id=bot_user_id)
        runner = JobRunner(
            engine=engine,
            store=store,
            client=client,
            fetcher=fetcher,
            settings=settings,
            budget=budget,
            spend=spend,
            finals=finals,
            memory=memory,
            on_ended=metrics.consultation_ended,
        )
        metrics.watch_queue(engine.admission)
        metrics.watch_claude_budget(claude_budget)
        consultant = Consultant(runner=runner, store=store, fetcher=fetcher, settings=settings, owner=owner)
        reruns = Reruns(runner=runner, store=store, consultant=consultant)
        queue = QueueNotices(runner, engine.admission, settings.queue_refresh_s)
        stack.push_async_callback(queue.aclose)
        resumer = Resumer(
            store=store,
            runner=runner,
            consultant=consultant,
            owner=owner,
            heartbeat_interval_s=settings.heartbeat_interval_s,
            stale_after_s=settings.stale_after_s,
        )
        # One SQLite process owns everything in its file (several instances need PostgreSQL): what is
        # active at start-up was left by a dead process, so it is taken over at once.
        single = isinstance(parse_database_url(settings.database_url), SqliteDatabase)
        first_stale_after_s = 0.0 if single else settings.stale_after_s
        heart = asyncio.create_task(resumer.run(first_stale_after_s=first_stale_after_s), name="heartbeat")
        readiness = Readiness(store)
        servers = await stack.enter_async_context(AsyncExitStack())  # closed after the drain: /readyz says so
        stack.push_async_callback(  # runs before the clients close
            _shut_down, consultant, resumer, heart, store, owner, settings.shutdown_grace_s
        )
        deps = Deps(
            store=store,
            access=access,
            memory=memory,
            reruns=reruns,
            consultant=consultant,
            bot_user_id=bot_user_id,
            budget=runner.budget,
        )
        followups = _followups(settings, store, engine, client, runner, reruns, bot_user_id, metrics)
        stack.push_async_callback(followups.aclose, settings.shutdown_grace_s)  # before the consultations drain
        parts = Parts(
            consultant=consultant, followups=followups, reruns=reruns, register=lambda app: register(app, deps)
        )
        app = build_app(settings, client, parts, bot_user_id)
        listeners = ListenerTasks.kept_for(app)
        stack.push_async_callback(listeners.finish, settings.shutdown_grace_s)  # after Slack stops, before the rest
        handler = KeptSocketModeHandler(app, app_token, web_client=client, kept=listeners) if app_token else None

        async def health() -> tuple[bool, dict[str, Any]]:
            connected = await handler.client.is_connected() if handler else True
            details = {
                "mode": "socket" if handler else "http",
                "running": engine.admission.running,
                "queued": engine.admission.waiting,
            }
            return connected, details

        token_s = settings.metrics_token.get_secret_value() if settings.metrics_token else None
        endpoint = MetricsEndpoint(metrics.exposition, token_s or None)
        bind = settings.metrics_address
        main_app = web_app(
            None if handler else app,
            health,
            readiness.check,
            draining=lambda: readiness.phase is Phase.DRAINING,
            metrics=endpoint if endpoint.token and bind is None else None,
        )
        base_url = await _listen(servers, main_app, settings.host, settings.port)
        metrics_url = await _listen(servers, metrics_app(endpoint), *bind) if bind else None
        if handler is not None:
            await handler.connect_async()  # type: ignore[no-untyped-call]  # unannotated in slack_bolt
            stack.push_async_callback(handler.close_async)
        stack.push_async_callback(readiness.drain)  # the first thing a shutdown does
        readiness.ready()
        mode = "socket" if handler else "http"
        log.info("matrec bot %s (%s) started in %s mode (health at %s/healthz)", bot_user_id, owner, mode, base_url)
        yield Running(mode, base_url, bot_user_id, consultant, resumer, followups, metrics_url)


async def _listen(stack: AsyncExitStack, app: web.Application, host: str, port: int) -> str:
    """Serve `app` on host:port until `stack` closes; its base URL (the port as bound)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    await web.TCPSite(runner, host, port).start()
    bound_host, bound_port = runner.addresses[0][:2]
    return f"http://{bound_host}:{bound_port}"


class ListenerTasks(AsyncListenerStartHandler):
    """The tasks Bolt and the Socket Mode client start for each request and do not keep.

    Both ack first and work on in tasks of their own: a dispatch, then the listener it starts. One
    still reading the store or starting a consultation when the bot stops must end before the
    consultations drain and the store closes, or it outlives them (and leaves a connection open).
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    @classmethod
    def kept_for(cls, app: AsyncApp) -> ListenerTasks:
        """Keep the listener tasks of `app` from now on."""
        kept = cls()
        app.listener_runner.listener_start_handler = kept
        return kept

    def keep_current(self) -> None:
        """Keep the running task until it ends."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def handle(self, request: AsyncBoltRequest, response: BoltResponse | None) -> None:
        """Called by Bolt inside each listener's task, as it starts."""
        self.keep_current()

    async def finish(self, grace_s: float) -> None:
        """Wait for every kept task, and the listeners they start meanwhile; cancel what is left after `grace_s`."""
        try:
            async with asyncio.timeout(grace_s):
                while self._tasks:
                    await asyncio.wait(set(self._tasks))
        except TimeoutError:
            left = list(self._tasks)
            for task in left:
                task.cancel()
            await asyncio.gather(*left, return_exceptions=True)
            log.warning("stopped waiting after %g s: %d Slack requests cancelled", grace_s, len(left))


class KeptSocketModeHandler(AsyncSocketModeHandler):
    """Socket Mode whose request tasks are kept (`ListenerTasks`), so a shutdown can wait for them."""

    def __init__(self, app: AsyncApp, app_token: str, *, web_client: AsyncWebClient, kept: ListenerTasks) -> None:
        super().__init__(app, app_token, web_client=web_client)
        self._kept = kept

    async def handle(self, client: SocketModeClient, req: SocketModeRequest) -> None:  # type: ignore[override]  # as Bolt's own
        """Dispatch one request to the app, in a task the shutdown waits for."""
        self._kept.keep_current()
        await super().handle(client, req)


def _followups(
    settings: BotSettings,
    store: Store,
    engine: Engine,
    client: AsyncWebClient,
    runner: JobRunner,
    reruns: Reruns,
    bot_user_id: str,
    metrics: Metrics,
) -> FollowUps:
    """Thread replies: answers streamed within Slack's app-wide limits, chat.update shared with the boards."""
    limits = StreamLimits(updates=runner.budget, streaming=settings.stream_answers)
    answerer = Answerer(
        store=store, engine=engine, client=client, finals=runner.finals, limits=limits, spend=runner.spend
    )
    return FollowUps(
        store=store,
        client=client,
        answerer=answerer,
        bot_user_id=bot_user_id,
        reruns=reruns,
        on_answered=metrics.followup_ended,
    )


def slack_client(token: str, api_url: str, metrics: Metrics | None = None) -> BudgetedClient:
    """The Web API client every part shares: inside the shared Slack budget once one is attached
    (`_share_budget`), with SDK retries of connection errors and of 429s (Retry-After) as the
    backstop, each 429 counted first when `metrics` is given."""
    client = BudgetedClient(token=token, base_url=api_url)
    if metrics is not None:
        client.retry_handlers.insert(0, metrics.slack_429_counter())
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES))
    return client


async def _share_budget(
    stack: AsyncExitStack, client: BudgetedClient, store: Store, settings: BotSettings
) -> UpdateBudget:
    """Put every call of `client` inside the Slack budget all instances share through `store`, and land
    moved boards' pointers, until the stack closes (before the store does)."""
    pointers = Pointers(store, client)
    budget = UpdateBudget(
        store, SlackRates.from_settings(settings), final_update_wait_s=settings.final_update_wait_s, pointers=pointers
    )
    client.budget = budget

    def detach() -> None:
        client.budget = None  # calls made while the bot shuts down go unpaced rather than to a closed store

    stack.callback(detach)
    landing = asyncio.create_task(pointers.run(), name="pointers")
    stack.push_async_callback(_cancelled, landing)
    return budget


def instance_name() -> str:
    """A name for this process in the store's ownership columns: host, pid and a random tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


async def _prune_forever(store: Store, retention_s: float) -> None:
    """Forget old dedupe keys now and then (they must outlive Slack's retries, not the bot)."""
    while True:
        try:
            removed = await store.prune_dedupe(retention_s)
            log.debug("pruned %d dedupe keys", removed)
        except Exception:  # a database hiccup must not end pruning for good; the next round tries again
            log.exception("pruning dedupe keys failed")
        await asyncio.sleep(PRUNE_INTERVAL_S)


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _shut_down(
    consultant: Consultant, resumer: Resumer, heart: asyncio.Task[None], store: Store, owner: str, grace_s: float
) -> None:
    """Stop taking work over, let running consultations finish for the grace period, cancel the rest,
    then hand what is left to the next instance (release) before the clients close."""
    resumer.taking_over = False  # keep heartbeating while draining, or a replica would take our work
    try:
        async with asyncio.timeout(grace_s):
            await consultant.drain()
    except TimeoutError:
        cancelled = await consultant.cancel_all()
        log.warning("stopped waiting after %g s: %d consultations cancelled, to resume later", grace_s, cancelled)
    await _cancelled(heart)
    try:
        released = await store.release(owner)
    except Exception:  # the next start resumes them anyway, once their heartbeat is stale
        log.exception("could not release this instance's consultations")
    else:
        if released:
            log.info("released %d unfinished consultations for the next instance to resume", released)


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
