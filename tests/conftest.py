"""Test-wide guards (no test may reach the network, no real secret may leak in), and the two
loopback emulators as fixtures: `slack` and `claude` (a module may define its own to vary them)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from emulators.claude import ClaudeEmulator
from emulators.slack import SlackEmulator
from tests.engine_support import KEY

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


class NetworkAccessError(AssertionError):
    """A test tried to reach a host that is not loopback."""


def _is_loopback(host: object) -> bool:
    if not isinstance(host, str | bytes):
        return True  # AF_UNIX paths and the like
    name = host.decode() if isinstance(host, bytes) else host
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name.split("%")[0]).is_loopback
    except ValueError:
        return False


def _check(address: Any) -> None:
    host = address[0] if isinstance(address, tuple) else address
    if not _is_loopback(host):
        raise NetworkAccessError(f"a test tried to reach the network: {address!r}")


def _guarded_connect(self: socket.socket, address: Any) -> None:
    _check(address)
    _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    _check(address)
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if host is not None:
        _check((host,))
    return _real_getaddrinfo(host, *args, **kwargs)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fail loudly on any non-loopback connection; run in an empty directory with no secrets."""
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", _guarded_getaddrinfo)
    for name in (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "SLACK_BOT_TOKEN",
        "SLACK_APP_TOKEN",
        "SLACK_SIGNING_SECRET",
        "SLACK_API_URL",
        "DATABASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env or database file is read or written


@pytest.fixture
async def slack() -> AsyncIterator[SlackEmulator]:
    """A loopback Slack workspace (Web API, Socket Mode, signed HTTP, file hosting)."""
    async with SlackEmulator() as emulator:
        yield emulator


@pytest.fixture
async def claude() -> AsyncIterator[ClaudeEmulator]:
    """A loopback Claude Messages API with Claude 5.x rules, thinking included."""
    async with ClaudeEmulator(api_key=KEY) as emulator:
        yield emulator
