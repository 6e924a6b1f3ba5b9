"""From an upload to a finished thread: claim, placeholder, download, live board, store, reactions."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import blocks
from bot.budget import UpdateBudget
from bot.files import FileFetcher, FileRejected, SlackFile
from bot.settings import BotSettings
from bot.store import Consultation, ConsultationStatus, Store
from bot.writer import MessageWriter, post_reply
from matrec.engine import Engine, Part
from matrec.errors import BadInputError, MatrecError
from matrec.images import ACCEPTED_FORMATS_TEXT
from matrec.progress import ProgressEvent, RunSnapshot
from matrec.results import BranchResult
from matrec.settings import Mode

log = logging.getLogger(__name__)

THREAD_STATUS = "is analysing the part…"
TEXT_ONLY_LABEL = "your description"
HELP = (
    "Send me a photo of the part (" + ACCEPTED_FORMATS_TEXT + "), with a line about its job, the load, "
    "temperature, environment and quantity, and I will compare six material classes for it. "
    "You can also just describe the part in words."
)
EYES, DONE, WARNING = "eyes", "white_check_mark", "warning"


@dataclass(frozen=True)
class Upload:
    """One Slack message that asks for a consultation."""

    event_id: str | None
    channel: str
    ts: str
    thread_ts: str
    user: str | None
    text: str
    files: tuple[SlackFile, ...]
    mentioned: bool


@dataclass
class _Job:
    """One board in the thread: an image (or the text alone) and its consultation record."""

    record: Consultation
    file: SlackFile | None
    writer: MessageWriter | None = None
    snapshot: RunSnapshot | None = field(default=None)

    @property
    def part(self) -> str:
        return self.file.name if self.file else TEXT_ONLY_LABEL


class Consultant:
    """Runs one consultation per qualifying upload, each in its own task."""

    def __init__(
        self,
        *,
        engine: Engine,
        store: Store,
        client: AsyncWebClient,
        fetcher: FileFetcher,
        settings: BotSettings,
        mode: Mode = Mode.PARALLEL,
    ) -> None:
        self.engine = engine
        self.store = store
        self.client = client
        self.fetcher = fetcher
        self.settings = settings
        self.mode = mode
        self._tasks: set[asyncio.Task[None]] = set()
        self.budget = UpdateBudget(settings.updates_per_minute, settings.update_burst)

    def start(self, upload: Upload) -> None:
        """Handle `upload` in the background; the task is kept until it ends."""
        task = asyncio.create_task(self._guarded(upload), name=f"consultation {upload.channel}/{upload.ts}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def running(self) -> frozenset[asyncio.Task[None]]:
        """The consultations in progress."""
        return frozenset(self._tasks)

    async def drain(self) -> None:
        """Wait for every running consultation to finish."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _guarded(self, upload: Upload) -> None:
        try:
            await self.handle(upload)
        except Exception:  # the process stays up and other consultations go on; the bug is logged
            log.exception("handling %s/%s failed", upload.channel, upload.ts)

    async def handle(self, upload: Upload) -> None:
        """The whole flow for one upload; duplicates (redeliveries) end at the claim."""
        files = [await self._resolve(f) for f in upload.files]  # before the claim: no I/O between it and add
        if not await self.store.claim_message(event_id=upload.event_id, channel=upload.channel, ts=upload.ts):
            log.info("duplicate delivery of %s/%s ignored", upload.channel, upload.ts)
            return
        images = [f for f in files if isinstance(f, SlackFile) and f.looks_like_image]
        skipped = [f for f in files if not (isinstance(f, SlackFile) and f.looks_like_image)]
        if not images and (upload.files or not upload.text):
            if upload.mentioned:
                await self._notice(upload, _skipped_text(skipped) if skipped else HELP)
            return
        jobs = [_Job(self._record(upload, f), f) for f in images[: self.settings.max_images_per_message]]
        if not jobs:
            jobs = [_Job(self._record(upload, None), None)]
        for job in jobs:
            await self.store.add(job.record)
        await self._run(upload, jobs, skipped, dropped=len(images[self.settings.max_images_per_message :]))

    async def _run(
        self, upload: Upload, jobs: list[_Job], skipped: list[SlackFile | FileRejected], dropped: int
    ) -> None:
        await self._react(upload, add=EYES)
        for job in jobs:
            await self._post_board(upload, job)
        await self._thread_status(upload)
        if skipped and upload.mentioned:
            await self._notice(upload, _skipped_text(skipped))
        if dropped:
            await self._notice(upload, f"I analysed the first {len(jobs)} images; {dropped} more were left out.")
        async with asyncio.TaskGroup() as group:
            for job in jobs:
                group.create_task(self._consult(upload, job))
        ok = all(job.record.status is ConsultationStatus.DONE for job in jobs)
        await self._react(upload, remove=EYES, add=DONE if ok else WARNING)

    def _record(self, upload: Upload, file: SlackFile | None) -> Consultation:
        now = datetime.now(UTC)
        return Consultation(
            id=uuid.uuid4().hex,
            channel=upload.channel,
            thread_ts=upload.thread_ts,
            message_ts=upload.ts,
            user_id=upload.user,
            file_id=file.id if file else None,
            file_name=file.name if file else None,
            image_sha256=None,
            context=upload.text,
            status=ConsultationStatus.RECEIVED,
            board_ts=None,
            branches=[],
            recommendation=None,
            usage_cost_usd=None,
            error=None,
            created_at=now,
            updated_at=now,
        )

    async def _resolve(self, file: SlackFile) -> SlackFile | FileRejected:
        if not file.is_stub:
            return file
        try:
            return await self.fetcher.resolve(file)
        except FileRejected as rejected:
            return rejected

    async def _post_board(self, upload: Upload, job: _Job) -> None:
        shown = blocks.board(None, part=job.part, context=upload.text, mode=self.mode)
        try:
            ts = await post_reply(self.client, channel=upload.channel, thread_ts=upload.thread_ts, rendered=shown)
        except SlackApiError as error:
            log.warning("could not post the board in %s: %s", upload.channel, error.response.get("error"))
            return
        job.writer = MessageWriter(
            self.client,
            channel=upload.channel,
            ts=ts,
            thread_ts=upload.thread_ts,
            shown=shown,
            interval_s=self.settings.update_interval_s,
            budget=self.budget,
        )
        job.record = await self.store.update(job.record.id, board_ts=ts)

    async def _consult(self, upload: Upload, job: _Job) -> None:
        writer = job.writer
        if writer is None:
            job.record = await self.store.update(job.record.id, status=ConsultationStatus.FAILED, error="no board")
            return
        job.record = await self.store.update(job.record.id, status=ConsultationStatus.RUNNING)

        def on_progress(event: ProgressEvent) -> None:
            job.snapshot = event.snapshot
            writer.submit(blocks.board(event.snapshot, part=job.part, context=upload.text, mode=self.mode))

        try:
            image = await self.fetcher.fetch(job.file) if job.file else None
            rec = await self.engine.evaluate(
                Part(image=image, context=upload.text, label=job.part), on_progress=on_progress
            )
        except (FileRejected, BadInputError) as error:
            await self._finish_rejected(upload, job, str(error))
            return
        except MatrecError as error:
            final = (
                blocks.board(job.snapshot, part=job.part, context=upload.text, mode=self.mode)
                if job.snapshot is not None
                else blocks.board_error(part=job.part, context=upload.text, message=str(error))
            )
            await writer.close(final)
            job.record = await self.store.update(
                job.record.id, status=ConsultationStatus.FAILED, error=str(error), branches=_branches(job)
            )
            return
        except Exception:  # a bug in one consultation must not take the others down
            log.exception("consultation %s failed unexpectedly", job.record.id)
            message = "Something went wrong on my side; the error is logged. Please try again."
            await writer.close(blocks.board_error(part=job.part, context=upload.text, message=message))
            job.record = await self.store.update(job.record.id, status=ConsultationStatus.FAILED, error=message)
            return
        await writer.close(blocks.board(job.snapshot, part=job.part, context=upload.text, mode=self.mode))
        job.record = await self.store.update(
            job.record.id,
            status=ConsultationStatus.DONE,
            recommendation=rec,
            branches=rec.branches,
            usage_cost_usd=rec.usage.cost_usd,
            image_sha256=rec.image.sha256 if rec.image else None,
        )

    async def _finish_rejected(self, upload: Upload, job: _Job, message: str) -> None:
        assert job.writer is not None
        await job.writer.close(blocks.board_error(part=job.part, context=upload.text, message=message))
        job.record = await self.store.update(job.record.id, status=ConsultationStatus.REJECTED, error=message)

    async def _notice(self, upload: Upload, message: str) -> None:
        rendered = blocks.notice(message)
        try:
            await post_reply(self.client, channel=upload.channel, thread_ts=upload.thread_ts, rendered=rendered)
        except SlackApiError as error:
            log.warning("could not reply in %s: %s", upload.channel, error.response.get("error"))

    async def _react(self, upload: Upload, *, add: str | None = None, remove: str | None = None) -> None:
        for method, name in ((self.client.reactions_remove, remove), (self.client.reactions_add, add)):
            if name is None:
                continue
            try:
                await method(channel=upload.channel, timestamp=upload.ts, name=name)
            except SlackApiError as error:
                log.info("reaction %s on %s/%s: %s", name, upload.channel, upload.ts, error.response.get("error"))

    async def _thread_status(self, upload: Upload) -> None:
        try:
            await self.client.assistant_threads_setStatus(
                channel_id=upload.channel, thread_ts=upload.thread_ts, status=THREAD_STATUS
            )
        except SlackApiError as error:
            log.debug("thread status unavailable: %s", error.response.get("error"))


def _branches(job: _Job) -> list[BranchResult]:
    if job.snapshot is None:
        return []
    return [b.result for b in job.snapshot.branches if b.result is not None]


def _skipped_text(skipped: list[SlackFile | FileRejected]) -> str:
    names = [f.name if isinstance(f, SlackFile) else str(f) for f in skipped]
    return "I can only analyse photos (" + ACCEPTED_FORMATS_TEXT + "); I skipped: " + "; ".join(names) + "."
