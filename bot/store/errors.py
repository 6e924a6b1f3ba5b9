"""The store's errors; the tree and who sees each is in bot/store/__init__.py."""

from __future__ import annotations

from matrec.errors import ConfigError


class DatabaseUrlError(ConfigError, ValueError):
    """DATABASE_URL is not a form the store accepts; shown to whoever starts the bot."""


class SchemaTooNewError(ConfigError):
    """The database was migrated by a newer bot; shown to whoever starts this (older) one."""
