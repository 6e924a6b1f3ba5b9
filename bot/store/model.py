"""A consultation as stored: the pydantic model, its statuses and what update() may change."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from matrec.results import BranchResult, Recommendation

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_as_utc)]


class ConsultationStatus(StrEnum):
    """Where a consultation is in its life."""

    RECEIVED = "received"  # claimed and recorded, work not started
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # the engine gave no recommendation (quorum, timeout, bad image…)
    REJECTED = "rejected"  # not analysed at all (not an image, too many images…)
    INTERRUPTED = "interrupted"  # left by earlier versions at a restart; restarts now resume instead


ACTIVE_STATUSES = (ConsultationStatus.RECEIVED, ConsultationStatus.RUNNING)


class Consultation(BaseModel):
    """One uploaded image's consultation, as stored."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    channel: str
    thread_ts: str
    message_ts: str
    user_id: str | None = None
    file_id: str | None = None
    file_name: str | None = None
    image_sha256: str | None = None
    context: str = ""
    status: ConsultationStatus = ConsultationStatus.RECEIVED
    board_ts: str | None = None
    branches: list[BranchResult] = Field(default_factory=list)
    recommendation: Recommendation | None = None
    usage_cost_usd: float | None = None
    error: str | None = None
    created_at: UtcDatetime = Field(default_factory=utc_now)
    updated_at: UtcDatetime = Field(default_factory=utc_now)
    owner: str | None = None  # the instance working on it while ACTIVE
    heartbeat_at: UtcDatetime | None = None  # when `owner` last said it is alive
    resumes: int = Field(default=0, ge=0)  # how many times another instance took it over


COLUMNS = tuple(Consultation.model_fields)
UPDATABLE_FIELDS = frozenset(COLUMNS) - {"id", "channel", "thread_ts", "message_ts", "created_at", "updated_at"}


def apply_changes(current: Consultation, changes: Mapping[str, Any], now: datetime) -> Consultation:
    """`current` with `changes` validated and applied and `updated_at` set to `now`."""
    bad = sorted(set(changes) - UPDATABLE_FIELDS)
    if bad:
        raise TypeError(f"cannot update {', '.join(bad)}; updatable: {', '.join(sorted(UPDATABLE_FIELDS))}")
    return Consultation.model_validate({**dict(current), **changes, "updated_at": now})
