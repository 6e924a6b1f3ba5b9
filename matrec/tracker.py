"""The live state of one consultation, published as a snapshot on every change."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from matrec.materials import MaterialClass
from matrec.progress import (
    BranchState,
    BranchStatus,
    EventKind,
    ProgressEvent,
    ProgressSink,
    RunSnapshot,
    StageStatus,
)
from matrec.results import BranchResult, Recommendation

log = logging.getLogger(__name__)

_BRANCH_EVENTS = {
    BranchStatus.QUEUED: EventKind.BRANCH_QUEUED,
    BranchStatus.RUNNING: EventKind.BRANCH_RUNNING,
    BranchStatus.DONE: EventKind.BRANCH_DONE,
    BranchStatus.FAILED: EventKind.BRANCH_FAILED,
}
_AGGREGATION_EVENTS = {
    StageStatus.RUNNING: EventKind.AGGREGATION_RUNNING,
    StageStatus.DONE: EventKind.AGGREGATION_DONE,
    StageStatus.FAILED: EventKind.AGGREGATION_FAILED,
}


class Tracker:
    """Holds one run's snapshot and tells the sink about every change."""

    def __init__(
        self,
        snapshot: RunSnapshot,
        sink: ProgressSink | None,
    ) -> None:
        self.snapshot = snapshot
        self._sink = sink
        self._emit(EventKind.RUN_STARTED)

    @staticmethod
    def branches(specs: Sequence[tuple[MaterialClass, str | None]]) -> tuple[BranchState, ...]:
        """Initial (queued) states for the given (class, condition) pairs."""
        return tuple(BranchState(material=m, condition=c) for m, c in specs)

    def branch(self, index: int, status: BranchStatus, result: BranchResult | None = None) -> None:
        """Record a branch's new state."""
        branches = list(self.snapshot.branches)
        branches[index] = branches[index].model_copy(update={"status": status, "result": result})
        self.snapshot = self.snapshot.model_copy(update={"branches": tuple(branches)})
        self._emit(_BRANCH_EVENTS[status], index)

    def aggregation(self, status: StageStatus) -> None:
        """Record the aggregation step's new state."""
        self.snapshot = self.snapshot.model_copy(update={"aggregation": status})
        self._emit(_AGGREGATION_EVENTS[status])

    def done(self, recommendation: Recommendation) -> None:
        """The run ended with a recommendation."""
        self.snapshot = self.snapshot.model_copy(update={"status": StageStatus.DONE, "recommendation": recommendation})
        self._emit(EventKind.RUN_DONE)

    def failed(self, error: str) -> None:
        """The run ended without a recommendation."""
        self.snapshot = self.snapshot.model_copy(update={"status": StageStatus.FAILED, "error": error})
        self._emit(EventKind.RUN_FAILED)

    def _emit(self, kind: EventKind, branch: int | None = None) -> None:
        if self._sink is None:
            return
        try:
            self._sink(ProgressEvent(kind=kind, branch=branch, snapshot=self.snapshot))
        except Exception:  # a renderer's bug must not fail the analysis it renders; it is logged
            log.exception("the progress sink failed on %s", kind.value)
