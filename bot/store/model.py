"""The stored records: consultations (with what update() may change), images, turns, feedback, stats."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from matrec.materials import MaterialClass
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


class ConsultationKind(StrEnum):
    """Why a consultation exists: an upload, or a re-run / stress test of an earlier one (`parent_id`)."""

    UPLOAD = "upload"
    RERUN = "rerun"
    STRESS = "stress"


class StoredFile(BaseModel):
    """One Slack file (photo) of the part."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str


class Consultation(BaseModel):
    """One part's consultation (from one or more photos, or text alone), as stored."""

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
    kind: ConsultationKind = ConsultationKind.UPLOAD
    parent_id: str | None = None  # the consultation a re-run / stress test / split came from
    requirements: list[str] = Field(default_factory=list)  # what a re-run added to the parent's context
    files: list[StoredFile] = Field(default_factory=list)  # every photo; file_id/file_name are the first
    channel_type: str | None = None  # Slack's "channel", "group", "im" or "mpim"
    part_text: str = ""  # a short description of the part, for search; set once final


COLUMNS = tuple(Consultation.model_fields)
UPDATABLE_FIELDS = frozenset(COLUMNS) - {"id", "channel", "thread_ts", "message_ts", "created_at", "updated_at"}


def apply_changes(current: Consultation, changes: Mapping[str, Any], now: datetime) -> Consultation:
    """`current` with `changes` validated and applied and `updated_at` set to `now`."""
    bad = sorted(set(changes) - UPDATABLE_FIELDS)
    if bad:
        raise TypeError(f"cannot update {', '.join(bad)}; updatable: {', '.join(sorted(UPDATABLE_FIELDS))}")
    return Consultation.model_validate({**dict(current), **changes, "updated_at": now})


class StoredImage(BaseModel):
    """One prepared photo exactly as it was sent to Claude, so follow-ups resend identical bytes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    position: int = Field(ge=0)
    media_type: str
    data: bytes
    width: int
    height: int
    original_width: int
    original_height: int
    original_format: str
    sha256: str


class TurnStatus(StrEnum):
    """Where a follow-up question is: waiting for its answer, answered, failed, or not answered on purpose."""

    PENDING = "pending"
    ANSWERED = "answered"
    FAILED = "failed"
    SKIPPED = "skipped"


class Turn(BaseModel):
    """One follow-up question in a consultation's thread and the bot's answer to it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    consultation_id: str
    channel: str
    thread_ts: str
    message_ts: str  # the question's message
    user_id: str | None = None
    question: str
    answer: str | None = None
    status: TurnStatus = TurnStatus.PENDING
    changes: list[str] = Field(default_factory=list)  # requirement changes the answer proposed
    answer_ts: str | None = None  # the answer's message
    created_at: UtcDatetime = Field(default_factory=utc_now)
    updated_at: UtcDatetime = Field(default_factory=utc_now)


TURN_COLUMNS = tuple(Turn.model_fields)
TURN_UPDATABLE_FIELDS = frozenset({"question", "answer", "status", "changes", "answer_ts", "user_id"})

Rating = Literal["helpful", "not_helpful"]


class Feedback(BaseModel):
    """One person's latest verdict on a consultation: was it helpful, and what the team chose."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    consultation_id: str
    user_id: str
    rating: Rating | None = None
    chosen: MaterialClass | None = None
    updated_at: UtcDatetime = Field(default_factory=utc_now)


class Stats(BaseModel):
    """Consultations of some channels over the last weeks (see Store.stats for each count)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    total: int
    per_week: list[tuple[date, int]]  # (the week's Monday, consultations), oldest week first
    best: dict[MaterialClass, int]  # recommended best class
    chosen: dict[MaterialClass, int]  # the team's choices, each person's latest per consultation
    with_choice: int  # consultations with at least one choice
    agreed: int  # consultations whose most-chosen class is the recommended best


def apply_turn_changes(current: Turn, changes: Mapping[str, Any], now: datetime) -> Turn:
    """`current` with `changes` validated and applied and `updated_at` set to `now`."""
    bad = sorted(set(changes) - TURN_UPDATABLE_FIELDS)
    if bad:
        raise TypeError(f"cannot update {', '.join(bad)}; updatable: {', '.join(sorted(TURN_UPDATABLE_FIELDS))}")
    return Turn.model_validate({**dict(current), **changes, "updated_at": now})
