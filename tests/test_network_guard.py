"""The guard that makes a forgotten real network call fail loudly."""

from __future__ import annotations

import socket

import pytest


def test_connecting_to_a_public_address_fails_loudly() -> None:
    with socket.socket() as sock, pytest.raises(AssertionError, match="reach the network"):
        sock.connect(("203.0.113.7", 443))


def test_resolving_a_public_host_fails_loudly() -> None:
    with pytest.raises(AssertionError, match=r"api\.anthropic\.com"):
        socket.getaddrinfo("api.anthropic.com", 443)


def test_loopback_stays_reachable() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.socket() as client:
            client.connect(server.getsockname())
