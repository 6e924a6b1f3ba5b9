"""`/healthz` (alive) and `/readyz` (send traffic here) of the running bot: a database blip takes
it out of rotation without making it look dead; starting and draining are not ready either."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import pytest
from sqlalchemy.exc import OperationalError

from bot.readiness import DATABASE_UNREACHABLE, Readiness
from bot.service import Running
from bot.store import Store
from emulators.claude import ClaudeEmulator
from emulators.slack import SlackEmulator
from tests.bot_support import ALICE, GENERAL, SIGNING_SECRET, WAIT_S, bot_settings, running_bot
from tests.engine_support import jpeg_bytes
from tests.store_support import fresh_database

POLL_S = 0.05


async def get(url: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


async def until(running: Running, path: str, status: int) -> dict[str, Any]:
    """Poll `path` until it answers `status`; its body."""
    async with asyncio.timeout(WAIT_S):
        while True:
            got, body = await get(f"{running.base_url}{path}")
            if got == status:
                return body
            await asyncio.sleep(POLL_S)


async def test_a_started_bot_is_alive_and_ready(slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path) -> None:
    async with running_bot(slack, claude, bot_settings(slack, tmp_path)) as running:
        assert await get(f"{running.base_url}/healthz") == (
            200,
            {"ok": True, "mode": "socket", "running": 0, "queued": 0},
        )
        assert await get(f"{running.base_url}/readyz") == (200, {"ok": True})


async def test_a_database_that_fails_makes_the_bot_unready_but_not_unhealthy(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(_store: Store) -> None:
        raise OperationalError("SELECT 1", {}, Exception("disk I/O error"))

    async with running_bot(slack, claude, bot_settings(slack, tmp_path)) as running:
        with monkeypatch.context() as patch:
            patch.setattr(Store, "ping", broken)
            assert await get(f"{running.base_url}/readyz") == (503, {"ok": False, "reason": DATABASE_UNREACHABLE})
            assert (await get(f"{running.base_url}/healthz"))[0] == 200
        assert await get(f"{running.base_url}/readyz") == (200, {"ok": True})


class Proxy:
    """A loopback TCP proxy to PostgreSQL that can drop every connection and refuse new ones (a blip)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def blip(self) -> None:
        """Drop every connection and stop listening."""
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, upstream_writer}

        async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(copy(reader, upstream_writer), copy(upstream_reader, writer))
        self._writers -= {writer, upstream_writer}


@contextlib.asynccontextmanager
async def proxied_postgres(tmp_path: Path) -> AsyncIterator[tuple[str, Proxy]]:
    """A fresh PostgreSQL schema's URL, through a proxy the test can break."""
    async with fresh_database("postgres", tmp_path) as url:
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        proxy = Proxy(parts.hostname, parts.port)
        await proxy.start()
        netloc = parts.netloc.rsplit(":", 1)[0] + f":{proxy.port}"
        try:
            yield urlunsplit(parts._replace(netloc=netloc)), proxy
        finally:
            with contextlib.suppress(AssertionError):
                await proxy.blip()


async def test_a_postgresql_blip_takes_the_bot_out_of_rotation_and_back(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    async with proxied_postgres(tmp_path) as (url, proxy):
        settings = bot_settings(slack, tmp_path, DATABASE_URL=url)
        async with running_bot(slack, claude, settings) as running:
            assert (await get(f"{running.base_url}/readyz"))[0] == 200
            await proxy.blip()
            assert await until(running, "/readyz", 503) == {"ok": False, "reason": DATABASE_UNREACHABLE}
            assert (await get(f"{running.base_url}/healthz"))[0] == 200
            await proxy.start()  # the database is back, on the same port
            assert await until(running, "/readyz", 200) == {"ok": True}


async def test_a_draining_bot_is_not_ready_and_refuses_new_events(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    claude.latency_s = 1.0  # a consultation still running when the bot is told to stop
    settings = bot_settings(slack, tmp_path, socket=False, MATREC_SHUTDOWN_GRACE_S=WAIT_S)
    stop_seen: dict[str, Any] = {}
    async with running_bot(slack, claude, settings) as running:
        file = slack.add_file(jpeg_bytes(), "bracket.jpg", "image/jpeg", "jpg")
        body = slack.event_callback(slack.upload_message(GENERAL, ALICE, "over http", [file]))
        accepted = await slack.post_signed(f"{running.base_url}/slack/events", body, signing_secret=SIGNING_SECRET)
        assert accepted.status == 200
        await claude.wait_for_requests(1)
        base_url = running.base_url

        async def watch() -> None:
            stop_seen["readyz"] = await until(running, "/readyz", 503)
            async with aiohttp.ClientSession() as session, session.post(f"{base_url}/slack/events", json={}) as r:
                stop_seen["events"] = r.status
            stop_seen["healthz"] = (await get(f"{base_url}/healthz"))[0]

        watcher = asyncio.create_task(watch())
    await watcher
    assert stop_seen == {"readyz": {"ok": False, "reason": "draining"}, "events": 503, "healthz": 200}


async def test_readiness_waits_for_the_start(tmp_path: Path) -> None:
    async with await Store.open(f"sqlite:///{tmp_path / 'bot.db'}") as store:
        readiness = Readiness(store)
        assert await readiness.check() == (False, {"reason": "starting"})
        readiness.ready()
        assert await readiness.check() == (True, {})
        await readiness.drain()
        assert await readiness.check() == (False, {"reason": "draining"})
