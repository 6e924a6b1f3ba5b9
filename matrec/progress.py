"""Progress of a consultation, reported as data: events that each carry a full snapshot.

A snapshot holds every branch's state, so a renderer that falls behind may skip to the newest
one safely. The engine calls the sink synchronously from the event loop; sinks must not block.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from matrec.choices import Mode, Strategy
from matrec.materials import MaterialClass
from matrec.results import BranchResult, Recommendation


class BranchStatus(StrEnum):
    """Where one branch is."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class StageStatus(StrEnum):
    """Where the aggregation step, or the run as a whole, is."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class EventKind(StrEnum):
    """What just changed."""

    RUN_STARTED = "run_started"
    BRANCH_QUEUED = "branch_queued"
    BRANCH_RUNNING = "branch_running"
    BRANCH_DONE = "branch_done"
    BRANCH_FAILED = "branch_failed"
    AGGREGATION_RUNNING = "aggregation_running"
    AGGREGATION_DONE = "aggregation_done"
    AGGREGATION_FAILED = "aggregation_failed"
    RUN_DONE = "run_done"
    RUN_FAILED = "run_failed"


class BranchState(BaseModel):
    """One branch as it is now; `result` is set once it is done or failed."""

    model_config = ConfigDict(frozen=True)

    material: MaterialClass
    condition: str | None = None
    status: BranchStatus = BranchStatus.QUEUED
    result: BranchResult | None = None


class RunSnapshot(BaseModel):
    """Everything known about one consultation at one moment."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    part: str
    mode: Mode
    strategy: Strategy
    branches: tuple[BranchState, ...]
    aggregation: StageStatus = StageStatus.PENDING
    status: StageStatus = StageStatus.RUNNING
    recommendation: Recommendation | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        """Whether the run has ended, with a recommendation or an error."""
        return self.status in (StageStatus.DONE, StageStatus.FAILED)


class ProgressEvent(BaseModel):
    """One change to a run, with the snapshot after it."""

    model_config = ConfigDict(frozen=True)

    kind: EventKind
    branch: int | None = None
    snapshot: RunSnapshot


ProgressSink = Callable[[ProgressEvent], None]
