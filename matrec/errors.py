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
    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    SERVER_ERROR = "server_error"
    CONNECTION = "connection"
    SPEND_LIMIT = "spend_limit"
    AUTH = "auth"
    BAD_REQUEST = "bad_request"
    REFUSED = "refused"
    TRUNCATED = "truncated"
    INVALID_OUTPUT = "invalid_output"


class ModelCallError(Exception):
    """One Claude call failed after the SDK's retries; `reason` is readable by an engineer."""

    def __init__(self, kind: CallFailure, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
