"""From an upload to its boards: resolve files, claim the message with its records, run one job per image.

Claiming the message and recording its consultations happen in one transaction, so a message is
either unclaimed (Slack's retry is the only delivery left, and runs it) or claimed with its records
(a restart resumes them; a late retry is a duplicate). Nothing is ever both resumed and re-run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from bot.consultation.job import TEXT_ONLY_LABEL, Job, JobRunner
from bot.consultation.thread import EYES, THREAD_STATUS, Thread
from bot.files import FileFetcher, FileRejected, SlackFile
from bot.settings import BotSettings
from bot.store import Consultation, ConsultationStatus, Store
from matrec.images import ACCEPTED_FORMATS_TEXT

log = logging.getLogger(__name__)

HELP = (
    "Send me a photo of the part (" + ACCEPTED_FORMATS_TEXT + "), with a line about its job, the load, "
    "temperature, environment and quantity, and I will compare six material classes for it. "
    "You can also just describe the part in words."
)


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


class Consultant:
    """Runs one task per qualifying upload (and per resumed consultation); keeps them until they end."""

    def __init__(
        self, *, runner: JobRunner, store: Store, fetcher: FileFetcher, settings: BotSettings, owner: str
    ) -> None:
        self.runner = runner
        self.store = store
        self.fetcher = fetcher
        self.settings = settings
        self.owner = owner
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, upload: Upload) -> None:
        """Handle `upload` in the background."""
        self.spawn(self.handle(upload), name=f"consultation {upload.channel}/{upload.ts}")

    def spawn(self, work: Coroutine[Any, Any, None], *, name: str) -> None:
        """Run `work` as a consultation task: kept until it ends, its bugs logged, never the process's."""
        task = asyncio.create_task(self._guarded(work, name), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def running(self) -> frozenset[asyncio.Task[None]]:
        """The consultation tasks in progress (queued ones included)."""
        return frozenset(self._tasks)

    async def drain(self) -> None:
        """Wait for every consultation task to finish."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def cancel_all(self) -> int:
        """Cancel the tasks still running and wait for them to unwind; returns how many."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return len(tasks)

    @staticmethod
    async def _guarded(work: Coroutine[Any, Any, None], name: str) -> None:
        try:
            await work
        except Exception:  # the process stays up and other consultations go on; the bug is logged
            log.exception("%s failed", name)

    async def handle(self, upload: Upload) -> None:
        """The whole flow for one upload; duplicates (redeliveries) end at the claim."""
        files = [await self._resolve(f) for f in upload.files]  # before the claim: no I/O between it and add
        images = [f for f in files if isinstance(f, SlackFile) and f.looks_like_image]
        skipped = [f for f in files if not (isinstance(f, SlackFile) and f.looks_like_image)]
        kept = images[: self.settings.max_images_per_message]
        files_to_analyse: list[SlackFile | None]
        if images:
            files_to_analyse = list(kept)
        elif not upload.files and upload.text:
            files_to_analyse = [None]  # a description alone: a text-only consultation
        else:
            files_to_analyse = []  # nothing to analyse: at most a notice
        records = [self._record(upload, file) for file in files_to_analyse]
        claimed = await self.store.claim_and_add(
            event_id=upload.event_id, channel=upload.channel, ts=upload.ts, consultations=records
        )
        if not claimed:
            log.info("duplicate delivery of %s/%s ignored", upload.channel, upload.ts)
            return
        thread = Thread(self.runner.client, upload.channel, upload.thread_ts, upload.ts)
        if not records:
            if upload.mentioned:
                await thread.notice(_skipped_text(skipped) if skipped else HELP)
            return
        jobs = [
            Job(record, file, self.runner.engine.admission.ticket(), thread)
            for record, file in zip(records, files_to_analyse, strict=True)
        ]
        try:
            await thread.react(add=EYES)
            for job in jobs:
                await self.runner.post_board(job)
            await thread.status(THREAD_STATUS)
            if skipped and upload.mentioned:
                await thread.notice(_skipped_text(skipped))
            if dropped := len(images) - len(kept):
                await thread.notice(f"I analysed the first {len(kept)} images; {dropped} more were left out.")
            ends = await asyncio.gather(*(self.runner.run(job) for job in jobs))
        finally:
            for job in jobs:  # after run() a no-op; before it, frees the place and ends the writer
                await self.runner.abandon(job)
        await thread.finished(ok=all(end is ConsultationStatus.DONE for end in ends))

    def _record(self, upload: Upload, file: SlackFile | None) -> Consultation:
        """A new record, owned by this instance (the store stamps its first heartbeat)."""
        return Consultation(
            channel=upload.channel,
            thread_ts=upload.thread_ts,
            message_ts=upload.ts,
            user_id=upload.user,
            file_id=file.id if file else None,
            file_name=file.name if file else None,
            context=upload.text,
            status=ConsultationStatus.RECEIVED,
            owner=self.owner,
        )

    async def _resolve(self, file: SlackFile) -> SlackFile | FileRejected:
        if not file.is_stub:
            return file
        try:
            return await self.fetcher.resolve(file)
        except FileRejected as rejected:
            return rejected


def _skipped_text(skipped: list[SlackFile | FileRejected]) -> str:
    names = [f.name if isinstance(f, SlackFile) else str(f) for f in skipped]
    return "I can only analyse photos (" + ACCEPTED_FORMATS_TEXT + "); I skipped: " + "; ".join(names) + "."


__all__ = ["HELP", "TEXT_ONLY_LABEL", "Consultant", "Upload"]
