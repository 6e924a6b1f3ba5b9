"""The one error the emulated Web API raises internally: an `{"ok": false}` answer."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A Slack error answer; method handlers raise it and the router turns it into the JSON body."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The JSON body Slack sends for this error."""
        return {"ok": False, "error": self.error, **self.extra}
