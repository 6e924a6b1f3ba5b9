"""Logging set-up: one line per record, with every secret redacted before it is written."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable

REDACTED = "[redacted]"
# Slack tokens (bot, user, app-level, config), Anthropic keys, bearer headers, URL passwords.
_PATTERNS = (
    (re.compile(r"xox[abposre]-[A-Za-z0-9-]+"), REDACTED),
    (re.compile(r"xapp-[A-Za-z0-9-]+"), REDACTED),
    (re.compile(r"sk-ant-[A-Za-z0-9_-]+"), REDACTED),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\g<1>" + REDACTED),
    (re.compile(r"(://[^:/@\s]+:)[^@\s]+(@)"), r"\g<1>" + REDACTED + r"\g<2>"),
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with known secret values and anything shaped like a token replaced."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFormatter(logging.Formatter):
    """A formatter whose output never contains a secret, whatever a library put in the record."""

    def __init__(self, fmt: str, secrets: Iterable[str]) -> None:
        super().__init__(fmt)
        self._secrets = tuple(s for s in secrets if s)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self._secrets)


def configure(level: str, secrets: Iterable[str]) -> None:
    """Send all logging to stderr through the redacting formatter."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
