"""One board's consultation, from its turn in the queue to its final state in Slack.

A job never raises (but for cancellation): a rejected file, an engine error, a database error or a
bug each end the board with a message and the record with a status, and the other images of the
message, and every other consultation, go on. Its writer always ends with it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from slack_sdk.web.async_client import AsyncWebClient

from bot import blocks
from bot.budget import UpdateBudget
from bot.consultation.thread import Thread
from bot.files import FileFetcher, FileRejected, SlackFile
from bot.settings import BotSettings
from bot.store import Consultation, ConsultationStatus, Store
from bot.writer import MessageWriter, best_effort, post_reply
from matrec.admission import Ticket
from matrec.choices import Mode
from matrec.engine import Engine, Part
from matrec.errors import BadInputError, MatrecError
from matrec.progress import ProgressEvent, RunSnapshot
from matrec.results import BranchResult, Recommendation

log = logging.getLogger(__name__)

TEXT_ONLY_LABEL = "your description"
RESUMED_NOTE = ":arrows_counterclockwise: Resumed after the bot restarted."
UNEXPECTED_MESSAGE = "Something went wrong on my side; the error is logged. Please try again."


@dataclass(eq=False)  # identity: jobs are kept in sets
class Job:
    """One board in a thread: an image (or the text alone), its stored record, its place and writer."""

    record: Consultation
    file: SlackFile | None
    ticket: Ticket
    thread: Thread
    resumed: bool = False
    writer: MessageWriter | None = None
    snapshot: RunSnapshot | None = None
    shown_ahead: int | None = field(default=None)

    @property
    def part(self) -> str:
        """The name shown on the board."""
        return self.file.name if self.file else (self.record.file_name or TEXT_ONLY_LABEL)

    def note(self) -> str:
        """The board's note now: queued (with its place), resumed, or nothing."""
        if not self.ticket.admitted:
            return blocks.queued_note(self.ticket.ahead)
        return RESUMED_NOTE if self.resumed else ""


class JobRunner:
    """Posts boards and runs jobs; shared by fresh uploads and resumed consultations."""

    def __init__(
        self,
        *,
        engine: Engine,
        store: Store,
        client: AsyncWebClient,
        fetcher: FileFetcher,
        settings: BotSettings,
        budget: UpdateBudget,
        mode: Mode = Mode.PARALLEL,
    ) -> None:
        self.engine = engine
        self.store = store
        self.client = client
        self.fetcher = fetcher
        self.settings = settings
        self.budget = budget
        self.mode = mode
        self.queued: set[Job] = set()  # jobs whose board shows a queue place (see QueueNotices)

    def render(self, job: Job, snapshot: RunSnapshot | None = None) -> blocks.Rendered:
        """The board for `job` as it stands."""
        return blocks.board(snapshot, part=job.part, context=job.record.context, mode=self.mode, note=job.note())

    async def post_board(self, job: Job) -> None:
        """A new board in the thread (placeholder or queued); without one, the job has nowhere to show."""
        shown = self.render(job)
        posted = post_reply(self.client, channel=job.thread.channel, thread_ts=job.thread.thread_ts, rendered=shown)
        ts = await best_effort(posted, f"could not post the board in {job.thread.channel}")
        if ts is None:
            return
        self._attach(job, ts, shown)
        try:
            job.record = await self.store.update(job.record.id, board_ts=ts)
        except Exception:  # the board works without it; only a resume would post a new one
            log.exception("could not record the board of consultation %s", job.record.id)

    def attach_board(self, job: Job, ts: str) -> None:
        """Write to an existing board (a resumed consultation), showing where it stands now."""
        self._attach(job, ts, blocks.Rendered(text="", blocks=[]))
        assert job.writer is not None
        job.writer.submit(self.render(job))

    def _attach(self, job: Job, ts: str, shown: blocks.Rendered) -> None:
        job.writer = MessageWriter(
            self.client,
            channel=job.thread.channel,
            ts=ts,
            thread_ts=job.thread.thread_ts,
            shown=shown,
            interval_s=self.settings.update_interval_s,
            budget=self.budget,
        )
        job.shown_ahead = job.ticket.ahead if not job.ticket.admitted else None
        if not job.ticket.admitted:
            self.queued.add(job)

    async def run(self, job: Job) -> ConsultationStatus:
        """Wait for the job's turn, analyse, land the final board; returns how it ended."""
        try:
            if job.writer is None:
                self.release(job)
                job.record = await self.store.update(job.record.id, status=ConsultationStatus.FAILED, error="no board")
                return job.record.status
            return await self._run(job, job.writer)
        except Exception:  # isolation boundary: one job's bug or database error never reaches the others
            log.exception("consultation %s failed unexpectedly", job.record.id)
            self.release(job)
            return await self._finish_error(job, UNEXPECTED_MESSAGE, ConsultationStatus.FAILED)
        finally:
            self.release(job)
            if job.writer is not None:
                await job.writer.cancel()  # no-op after close(): the writer ends with its board

    def release(self, job: Job) -> None:
        """Give up the job's place in the queue (idempotent): for jobs that end, or never start."""
        job.ticket.leave()
        self.queued.discard(job)

    async def abandon(self, job: Job) -> None:
        """A job that will never run (its intake failed): free its place and end its writer."""
        self.release(job)
        if job.writer is not None:
            await job.writer.cancel()

    async def _run(self, job: Job, writer: MessageWriter) -> ConsultationStatus:
        outcome: Recommendation | MatrecError
        async with job.ticket:
            self.queued.discard(job)
            job.record = await self.store.update(job.record.id, status=ConsultationStatus.RUNNING)
            writer.submit(self.render(job))

            def on_progress(event: ProgressEvent) -> None:
                job.snapshot = event.snapshot
                writer.submit(self.render(job, event.snapshot))

            try:
                image = await self.fetcher.fetch(job.file) if job.file else None
                outcome = await self.engine.evaluate(
                    Part(image=image, context=job.record.context, label=job.part), on_progress=on_progress
                )
            except FileRejected as error:
                outcome = BadInputError(str(error))
            except MatrecError as error:
                outcome = error
        # The place is free again: landing the board (which may be retried for minutes) holds nobody up.
        if isinstance(outcome, BadInputError):
            return await self._finish_error(job, str(outcome), ConsultationStatus.REJECTED)
        if isinstance(outcome, MatrecError):
            if job.snapshot is None:
                return await self._finish_error(job, str(outcome), ConsultationStatus.FAILED)
            await writer.close(self.render(job, job.snapshot))
            job.record = await self.store.update(
                job.record.id,
                status=ConsultationStatus.FAILED,
                error=str(outcome),
                branches=_branches(job),
                board_ts=writer.ts,  # a board deleted meanwhile was re-posted
            )
            return job.record.status
        await writer.close(self.render(job, job.snapshot))
        job.record = await self.store.update(
            job.record.id,
            status=ConsultationStatus.DONE,
            recommendation=outcome,
            branches=outcome.branches,
            usage_cost_usd=outcome.usage.cost_usd,
            image_sha256=outcome.image.sha256 if outcome.image else None,
            error=None,
            board_ts=writer.ts,  # a board deleted meanwhile was re-posted
        )
        return job.record.status

    async def _finish_error(self, job: Job, message: str, status: ConsultationStatus) -> ConsultationStatus:
        if job.writer is not None:
            await job.writer.close(blocks.board_error(part=job.part, context=job.record.context, message=message))
        try:
            board_ts = job.writer.ts if job.writer is not None else job.record.board_ts
            job.record = await self.store.update(job.record.id, status=status, error=message, board_ts=board_ts)
        except Exception:  # the database itself may be what failed; the board already says so
            log.exception("could not record the end of consultation %s", job.record.id)
        return status


def _branches(job: Job) -> list[BranchResult]:
    if job.snapshot is None:
        return []
    return [b.result for b in job.snapshot.branches if b.result is not None]
