"""URLs safe to show: a password in one (a proxy's, a database's) never reaches a log or a message."""

from __future__ import annotations


def redact_url(url: str) -> str:
    """`url` with any password replaced by `***`, safe to log."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    at = rest.rfind("@")
    colon = rest.find(":")
    if at == -1 or colon == -1 or colon > at:
        return url
    return f"{scheme}://{rest[:colon]}:***{rest[at:]}"
