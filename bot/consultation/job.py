"""One board's consultation, from its turn in the queue to its final state in Slack.

A job never raises (but for cancellation): a rejected file, an engine error, a database error or a
bug each end the board with a message and the record with a status, and every other consultation
goes on. Its writer always ends with it, and `Finals.done` tells whoever waits for its final state.

A job is one part: every photo of the message (or of a re-run's parent) is downloaded, prepared
once by the engine and stored (`Store.save_images`) before the analysis, so follow-ups, re-runs
and a resume after a restart reuse byte-identical images.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

from slack_sdk.web.async_client import AsyncWebClient

from bot import blocks
from bot.board_view import BoardView
from bot.budget import UpdateBudget
from bot.chart import score_chart
from bot.consultation.ended import Ended, Outcome
from bot.consultation.thread import THREAD_STATUS, Thread
from bot.files import FileFetcher, FileRejected, SlackFile
from bot.finals import Finals
from bot.settings import BotSettings
from bot.spend import BUDGET_REACHED, SpendGuard
from bot.store import Consultation, ConsultationKind, ConsultationStatus, Reservation, Store, StoredImage
from bot.writer import MessageWriter, best_effort, post_reply
from matrec.admission import Ticket
from matrec.choices import Mode
from matrec.engine import Engine, Part, RunOptions
from matrec.errors import BadInputError, MatrecError
from matrec.images import PreparedImage
from matrec.progress import ProgressEvent, RunSnapshot
from matrec.results import BranchResult, Recommendation

log = logging.getLogger(__name__)

TEXT_ONLY_LABEL: Final = "your description"
RESUMED_NOTE: Final = ":arrows_counterclockwise: Resumed after the bot restarted."
UNEXPECTED_MESSAGE: Final = "Something went wrong on my side; the error is logged. Please try again."
CHART_FILENAME: Final = "matrec-scores.png"
PART_TEXT_CHARS: Final = 500  # the part's searchable description (Consultation.part_text)


class BoardViews(Protocol):
    """Where a final board's surroundings come from (`bot.memory.Memory`)."""

    async def view_for(self, consultation: Consultation) -> BoardView:
        """Choices, ratings and similar links for the board of `consultation`."""
        ...


@dataclass(eq=False)  # identity: jobs are kept in sets
class Job:
    """One board in a thread: the part's photos (or the text alone), its stored record, place and writer."""

    record: Consultation
    files: tuple[SlackFile, ...]
    ticket: Ticket
    thread: Thread
    resumed: bool = False
    prepared: tuple[PreparedImage, ...] | None = None  # set once the photos are prepared (or stored ones)
    mode: Mode = Mode.PARALLEL
    previous: Recommendation | None = None  # a re-run's parent recommendation
    writer: MessageWriter | None = None
    snapshot: RunSnapshot | None = None
    shown_ahead: int | None = field(default=None)
    started_s: float = field(default_factory=time.monotonic)  # when it was queued, for its end's `seconds`

    @property
    def part(self) -> str:
        """The name shown on the board: the first photo's, with how many more."""
        names = [f.name for f in self.files] or [f.name for f in self.record.files]
        if not names:
            return self.record.file_name or TEXT_ONLY_LABEL
        more = len(names) - 1
        return names[0] if not more else f"{names[0]} and {more} more photo{'s' if more > 1 else ''}"

    @property
    def photos(self) -> int:
        """How many photos the part has."""
        return len(self.files) or len(self.record.files) or (1 if self.record.file_id else 0)

    def note(self) -> str:
        """The board's note now: queued (with its place), resumed, or nothing."""
        if not self.ticket.admitted:
            return blocks.queued_note(self.ticket.ahead)
        return RESUMED_NOTE if self.resumed else ""

    def view(self) -> BoardView:
        """What the board shows around the analysis while it runs (and when no Memory is wired)."""
        return BoardView(
            consultation_id=self.record.id,
            photos=self.photos,
            kind=str(self.record.kind),
            changes=tuple(self.record.requirements),
            previous=self.previous,
        )


def mode_for(record: Consultation) -> Mode:
    """The mode a stored consultation runs in: a stress test is the nested variant."""
    return Mode.NESTED if record.kind is ConsultationKind.STRESS else Mode.PARALLEL


def stored_images(prepared: Sequence[PreparedImage]) -> list[StoredImage]:
    """Prepared images as the store keeps them, in order."""
    return [
        StoredImage(
            position=position,
            media_type=image.media_type,
            data=image.data,
            width=image.width,
            height=image.height,
            original_width=image.original_width,
            original_height=image.original_height,
            original_format=image.original_format,
            sha256=image.sha256,
        )
        for position, image in enumerate(prepared)
    ]


def prepared_images(stored: Sequence[StoredImage]) -> tuple[PreparedImage, ...]:
    """Stored images rebuilt byte-identically for the engine, in position order."""
    return tuple(
        PreparedImage.from_bytes(
            image.data,
            media_type=image.media_type,
            width=image.width,
            height=image.height,
            original_width=image.original_width,
            original_height=image.original_height,
            original_format=image.original_format,
            sha256=image.sha256,
        )
        for image in sorted(stored, key=lambda image: image.position)
    )


class JobRunner:
    """Posts boards and runs jobs; shared by uploads, re-runs and resumed consultations."""

    def __init__(
        self,
        *,
        engine: Engine,
        store: Store,
        client: AsyncWebClient,
        fetcher: FileFetcher,
        settings: BotSettings,
        budget: UpdateBudget,
        spend: SpendGuard | None = None,
        finals: Finals | None = None,
        memory: BoardViews | None = None,
        mode: Mode = Mode.PARALLEL,
        on_ended: Callable[[Ended], None] | None = None,
    ) -> None:
        self.engine = engine
        self.on_ended = on_ended  # the metrics hear of each end (the log line is written anyway)
        self.store = store
        self.client = client
        self.fetcher = fetcher
        self.settings = settings
        self.budget = budget
        self.spend = spend
        self.finals = finals or Finals()
        self.memory = memory
        self.mode = mode
        self.queued: set[Job] = set()  # jobs whose board shows a queue place (see QueueNotices)

    def job(
        self,
        record: Consultation,
        thread: Thread,
        *,
        files: Sequence[SlackFile] = (),
        prepared: Sequence[PreparedImage] | None = None,
        mode: Mode | None = None,
        resumed: bool = False,
    ) -> Job:
        """A job for a stored record, with its place in the queue."""
        return Job(
            record,
            tuple(files),
            self.engine.admission.ticket(),
            thread,
            resumed=resumed,
            prepared=tuple(prepared) if prepared is not None else None,
            mode=mode or mode_for(record),
        )

    async def launch(
        self,
        record: Consultation,
        thread: Thread,
        *,
        files: Sequence[SlackFile] = (),
        prepared: Sequence[PreparedImage] | None = None,
        mode: Mode | None = None,
        notices: Sequence[str] = (),
    ) -> ConsultationStatus:
        """The whole life of one board for a record already stored: posted, run, final; how it ended.

        `mode` defaults to the record's (`mode_for`: nested for a stress test); `notices` are posted
        in the thread right after the board (e.g. photos left out).
        """
        job = self.job(record, thread, files=files, prepared=prepared, mode=mode)
        try:
            job.previous = await self.previous(record)
            await self.post_board(job)
            for message in notices:
                await thread.notice(message)
            await thread.status(THREAD_STATUS)
            return await self.run(job)
        finally:
            await self.abandon(job)  # after run() a no-op; before it, frees the place and ends the writer
            self.finals.done(record.id)  # also when the board could not even be posted
            await thread.status("")  # Slack keeps the status after an edit of the board: cleared here

    def render(self, job: Job, snapshot: RunSnapshot | None = None, view: BoardView | None = None) -> blocks.Rendered:
        """The board for `job` as it stands."""
        return blocks.board(
            snapshot,
            part=job.part,
            context=job.record.context,
            mode=job.mode,
            note=job.note(),
            view=view or job.view(),
        )

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
        """Wait for the job's turn, analyse, land the final board and chart; returns how it ended."""
        status: ConsultationStatus | None = None  # stays None when cancelled
        try:
            status = await self._guarded(job)
            return status
        finally:
            self.release(job)
            if job.writer is not None:
                await job.writer.cancel()  # no-op after close(): the writer ends with its board
            self.finals.done(job.record.id)
            self._ended(job, status)

    async def _guarded(self, job: Job) -> ConsultationStatus:
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

    def _ended(self, job: Job, status: ConsultationStatus | None) -> None:
        """One log line per consultation, and the metrics."""
        outcome: Outcome = "cancelled" if status is None else _OUTCOMES.get(status, "failed")
        record = job.record
        ended = Ended.of(
            id=record.id,
            channel=record.channel,
            user=record.user_id,
            outcome=outcome,
            recommendation=record.recommendation if status is ConsultationStatus.DONE else None,
            branches=_branches(job),
            prices=self.engine.settings.price_table,
            seconds=time.monotonic() - job.started_s,
        )
        ended.log()
        if self.on_ended is not None:
            self.on_ended(ended)

    def release(self, job: Job) -> None:
        """Give up the job's place in the queue (idempotent): for jobs that end, or never start."""
        job.ticket.leave()
        self.queued.discard(job)

    async def abandon(self, job: Job) -> None:
        """A job that will never run (its intake failed): free its place and end its writer."""
        self.release(job)
        if job.writer is not None:
            await job.writer.cancel()

    async def previous(self, record: Consultation) -> Recommendation | None:
        """The parent's recommendation of a re-run or stress test, to say what changed."""
        if record.parent_id is None or record.kind is ConsultationKind.UPLOAD:
            return None
        parent = await self.store.get(record.parent_id)
        return parent.recommendation if parent is not None else None

    async def _run(self, job: Job, writer: MessageWriter) -> ConsultationStatus:
        outcome: Recommendation | MatrecError
        held = await self._hold(job)
        if held is False:  # past the spend cap: nothing goes to Claude
            return await self._finish_error(job, BUDGET_REACHED, ConsultationStatus.REJECTED)
        spent_usd: float | None = None
        async with job.ticket:
            self.queued.discard(job)
            job.record = await self.store.update(job.record.id, status=ConsultationStatus.RUNNING)
            writer.submit(self.render(job))

            def on_progress(event: ProgressEvent) -> None:
                job.snapshot = event.snapshot
                writer.submit(self.render(job, event.snapshot))

            try:
                prepared = await self._prepare(job)
                options = RunOptions.from_settings(self.engine.settings, mode=job.mode)
                part = Part(context=job.record.context, label=job.part)
                outcome = await self.engine.evaluate(part, options, on_progress, prepared=prepared or None)
                spent_usd = outcome.usage.cost_usd
            except FileRejected as error:
                outcome = BadInputError(str(error))
            except MatrecError as error:
                outcome = error
            finally:
                if held is not None and self.spend is not None:  # a failure counts the calls known to be made
                    await self.spend.settle(
                        held, spent_usd if spent_usd is not None else self.spend.known_cost_usd(_branches(job))
                    )
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
        final = job.record.model_copy(update={"status": ConsultationStatus.DONE, "recommendation": outcome})
        await writer.close(self.render(job, job.snapshot, await self._final_view(job, final)))
        job.record = await self.store.update(
            job.record.id,
            status=ConsultationStatus.DONE,
            recommendation=outcome,
            branches=outcome.branches,
            usage_cost_usd=outcome.usage.cost_usd,
            image_sha256=outcome.image.sha256 if outcome.image else None,
            part_text=part_text(outcome),
            error=None,
            board_ts=writer.ts,  # a board deleted meanwhile was re-posted
        )
        overflow = blocks.overflow_reply(outcome)
        if overflow is not None:  # what the board had no room for, right below it
            thread = job.thread
            reply = post_reply(self.client, channel=thread.channel, thread_ts=thread.thread_ts, rendered=overflow)
            await best_effort(reply, f"could not post the rest of the recommendation in {thread.channel}")
        await self._upload_chart(job, outcome)
        return job.record.status

    async def _hold(self, job: Job) -> Reservation | Literal[False] | None:
        """The job's worst case reserved against the spend cap: None without a cap, False past it."""
        if self.spend is None:
            return None
        worst_usd = self.spend.worst_case.consultation_usd(job.mode, photos=job.photos, context=job.record.context)
        return await self.spend.hold(job.record.channel, worst_usd) or False

    async def _prepare(self, job: Job) -> tuple[PreparedImage, ...]:
        """The part's photos ready for Claude: the ones given, or downloaded, prepared and stored now."""
        if job.prepared is not None:
            return job.prepared
        if not job.files:
            return ()
        images = await self._download(job)
        job.prepared = tuple(await self.engine.prepare(Part(images=images, context=job.record.context, label=job.part)))
        del images  # the full-size downloads are not needed past this point
        try:
            await self.store.save_images(job.record.id, stored_images(job.prepared))
        except Exception:  # the analysis goes on; follow-ups and re-runs will download again
            log.exception("could not store the images of consultation %s", job.record.id)
        return job.prepared

    async def _download(self, job: Job) -> tuple[bytes, ...]:
        """Every photo of the part; one that cannot be had is left out with a notice, unless it was the last."""
        fetched = await asyncio.gather(*(_fetched(self.fetcher, file) for file in job.files))
        images = tuple(data for data in fetched if isinstance(data, bytes))
        rejected = [str(data) for data in fetched if isinstance(data, FileRejected)]
        if not images:
            raise next(data for data in fetched if isinstance(data, FileRejected))
        if rejected:
            others = "the other photo" if len(images) == 1 else f"the other {len(images)} photos"
            await job.thread.notice(" ".join(rejected) + f" I analysed {others}.")
        return images

    async def _final_view(self, job: Job, final: Consultation) -> BoardView:
        """The final board's surroundings: the team's memory when wired, and what a re-run changed."""
        if self.memory is None:
            return job.view()
        try:
            view = await self.memory.view_for(final)
        except Exception:  # the board is complete without the team's memory; the bug is logged
            log.exception("could not gather the board view of consultation %s", final.id)
            return job.view()
        return dataclasses.replace(view, previous=job.previous, photos=job.photos)

    async def _upload_chart(self, job: Job, rec: Recommendation) -> None:
        """The calibrated scores as a chart in the thread (files upload v2), with alt text."""
        try:
            chart = await asyncio.to_thread(score_chart, rec)
        except Exception:  # the board already carries the scores; the chart is a picture of them
            log.exception("could not draw the chart of consultation %s", job.record.id)
            return
        upload = self.client.files_upload_v2(
            channel=job.thread.channel,
            thread_ts=job.thread.thread_ts,
            file=chart.png,
            filename=CHART_FILENAME,
            title=chart.title,
            alt_txt=chart.alt_text,
        )
        await best_effort(upload, f"could not upload the chart in {job.thread.channel}")

    async def _finish_error(self, job: Job, message: str, status: ConsultationStatus) -> ConsultationStatus:
        if job.writer is not None:
            await job.writer.close(blocks.board_error(part=job.part, context=job.record.context, message=message))
        try:
            board_ts = job.writer.ts if job.writer is not None else job.record.board_ts
            job.record = await self.store.update(job.record.id, status=status, error=message, board_ts=board_ts)
        except Exception:  # the database itself may be what failed; the board already says so
            log.exception("could not record the end of consultation %s", job.record.id)
        return status


async def _fetched(fetcher: FileFetcher, file: SlackFile) -> bytes | FileRejected:
    try:
        return await fetcher.fetch(file)
    except FileRejected as rejected:
        return rejected


def part_text(rec: Recommendation) -> str:
    """What the part is, for search: its name and what the best class's specialist saw in it."""
    best = next((b.analysis for b in rec.branches if b.material is rec.best and b.analysis is not None), None)
    pieces = [rec.part, *(best.evidence if best is not None else [])]
    return "; ".join(piece.strip() for piece in pieces if piece.strip())[:PART_TEXT_CHARS]


_OUTCOMES: Final[dict[ConsultationStatus, Outcome]] = {
    ConsultationStatus.DONE: "done",
    ConsultationStatus.FAILED: "failed",
    ConsultationStatus.REJECTED: "rejected",
}


def _branches(job: Job) -> list[BranchResult]:
    if job.snapshot is None:
        return []
    return [b.result for b in job.snapshot.branches if b.result is not None]
