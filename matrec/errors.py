"""The engine's error tree.

    MatrecError                 anything the engine reports instead of a recommendation
    ├── BadInputError           the caller's input cannot be analysed (CLI exit code 2)
    │   └── ImageError          the image is empty, not an image, corrupt, too big, unsupported
    ├── ConfigError             settings are missing or wrong (e.g. no ANTHROPIC_API_KEY)
    ├── QuorumError             too few branches succeeded to aggregate
    └── RunTimeoutError         the whole consultation overran its deadline

    ModelCallError              one Claude call failed; the engine turns it into a failed branch
                                (a value), so callers of the engine never see it

Every message is written for the person who sent the part: it says what was wrong and, where it
helps, what is accepted instead.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matrec.results import TokenUsage


class MatrecError(Exception):
    """Base of every error the engine raises to its callers."""


class BadInputError(MatrecError):
    """The input cannot be analysed; shown to the person who sent it."""


class ImageKind(StrEnum):
    """Why an image was rejected."""

    EMPTY = "empty"
    NOT_AN_IMAGE = "not_an_image"
    CORRUPT = "corrupt"
    TOO_MANY_PIXELS = "too_many_pixels"
    TOO_LARGE = "too_large"
    UNSUPPORTED = "unsupported"


class ImageError(BadInputError):
    """An image was rejected; `kind` says why, the message says it in plain words."""

    def __init__(self, kind: ImageKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class ConfigError(MatrecError):
    """Configuration is missing or invalid; shown to whoever starts the process."""


class QuorumError(MatrecError):
    """Fewer branches than the quorum succeeded; shown with each failed branch's reason."""


class RunTimeoutError(MatrecError):
    """The consultation as a whole overran its deadline."""


class CallFailure(StrEnum):
    """Why one Claude call failed."""

    TIMEOUT = "timeout"
    RATE_LIMITED = "rate_limited"  # 429 with retry-after
    OVERLOADED = "overloaded"  # 529, or overloaded_error mid-stream
    UNAVAILABLE = "unavailable"  # 503
    SERVER_ERROR = "server_error"  # other 5xx, 408, 409
    CONNECTION = "connection"  # no response at all
    DROPPED = "dropped"  # the answer's stream broke off, or sent something that is not an event
    SPEND_LIMIT = "spend_limit"  # 429 without retry-after: retrying cannot help
    AUTH = "auth"
    BAD_REQUEST = "bad_request"
    REFUSED = "refused"
    TRUNCATED = "truncated"  # stop_reason max_tokens: thinking plus answer reached the limit
    INVALID_OUTPUT = "invalid_output"
    UNEXPECTED = "unexpected"  # anything else raised inside a branch (a bug; logged with its traceback)


class ModelCallError(Exception):
    """One Claude call failed; `reason` is readable by an engineer.

    `retry_after_s` is the wait the API asked for; `usage` is what a completed but unusable answer
    (cut off, refused, off-schema) was billed, so estimates count it.
    """

    def __init__(
        self,
        kind: CallFailure,
        reason: str,
        *,
        retry_after_s: float | None = None,
        usage: TokenUsage | None = None,
    ) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.retry_after_s = retry_after_s
        self.usage = usage


def unexpected(error: Exception) -> str:
    """The reason shown for an exception nobody expected (its traceback goes to the log)."""
    return f"an unexpected error on our side ({type(error).__name__}: {error}); it is logged"
