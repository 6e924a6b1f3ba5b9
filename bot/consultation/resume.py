"""Nothing is lost to a restart: live consultations heartbeat; silent ones are taken over and resumed.

Every instance heartbeats the consultations it owns every `heartbeat_interval_s`. A periodic scan
(and one at start-up) takes over active consultations whose heartbeat is older than
`stale_after_s`: a crashed instance's work, whether it comes back or not. Resuming reuses the
part's prepared photos when they were stored before the crash, else downloads every photo again
(by id, through files.info); it runs the analysis again and updates the existing board, which
says it resumed. One owner: `Store.take_over` hands a consultation to one instance,
and a late Slack retry of the message is a duplicate at the claim.

A single SQLite process owns everything in its file, so at start-up it takes over at once
(`stale_after_s=0`); replicas on PostgreSQL wait for the heartbeat to go stale.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from bot import blocks
from bot.consultation.intake import Consultant
from bot.consultation.job import Job, JobRunner, prepared_images
from bot.consultation.rerun import PENDING_POSITION  # reply photos waiting for a re-run, not the part's
from bot.consultation.thread import Thread
from bot.files import SlackFile
from bot.store import ACTIVE_STATUSES, Consultation, ConsultationKind, ConsultationStatus, Store, StoredFile

log = logging.getLogger(__name__)

MAX_RESUMES: Final = 3  # a consultation that keeps dying with its process is given up, not retried forever
GIVEN_UP: Final = (
    "This consultation was interrupted by {count} restarts in a row, so I stopped retrying it. "
    "Please upload the photo again."
)


class Resumer:
    """Heartbeats this instance's consultations and resumes the ones whose owner fell silent."""

    def __init__(
        self,
        *,
        store: Store,
        runner: JobRunner,
        consultant: Consultant,
        owner: str,
        heartbeat_interval_s: float,
        stale_after_s: float,
    ) -> None:
        self.store = store
        self.runner = runner
        self.consultant = consultant
        self.owner = owner
        self.heartbeat_interval_s = heartbeat_interval_s
        self.stale_after_s = stale_after_s
        self.taking_over = True
        self.resumed = 0

    async def run(self, *, first_stale_after_s: float) -> None:
        """Take over at start-up, then heartbeat and scan until cancelled."""
        stale_after_s = first_stale_after_s
        while True:
            try:
                await self.store.heartbeat(self.owner)
                if self.taking_over:
                    await self.scan(stale_after_s)
            except Exception:  # a database hiccup must not end the heartbeat; the next beat tries again
                log.exception("heartbeat or take-over scan failed")
            stale_after_s = self.stale_after_s
            await asyncio.sleep(self.heartbeat_interval_s)  # the heartbeat's period

    async def scan(self, stale_after_s: float) -> int:
        """Take over silent consultations and resume each in its own task; returns how many."""
        taken = await self.store.take_over(self.owner, stale_after_s=stale_after_s)
        for record in taken:
            log.warning("resuming consultation %s (owner %s fell silent)", record.id, record.owner)
            self.consultant.spawn(self.resume(record), name=f"resume {record.id}")
        self.resumed += len(taken)
        return len(taken)

    async def resume(self, record: Consultation) -> None:
        """Run `record` again onto its existing board (or a new one), then settle the message."""
        thread = Thread(self.runner.client, record.channel, record.thread_ts, record.message_ts)
        stored = await self.store.images(record.id)
        prepared = prepared_images([image for image in stored if image.position < PENDING_POSITION])
        files = [] if prepared else [_stored_file(file) for file in _files(record)]
        job = self.runner.job(record, thread, files=files, prepared=prepared or None, resumed=True)
        try:
            if record.resumes > MAX_RESUMES:
                self.runner.release(job)
                await self._give_up(job)
            else:
                job.previous = await self.runner.previous(record)
                if record.board_ts:
                    self.runner.attach_board(job, record.board_ts)
                else:
                    await self.runner.post_board(job)
                await self.runner.run(job)
        finally:
            await self.runner.abandon(job)  # after run() a no-op; before it, frees the place and the writer
            self.runner.finals.done(record.id)
        await thread.status("")
        if record.kind is ConsultationKind.UPLOAD:  # a re-run has no message of its own to react on
            await self._settle(thread)

    async def _give_up(self, job: Job) -> None:
        message = GIVEN_UP.format(count=job.record.resumes)
        if job.record.board_ts:
            self.runner.attach_board(job, job.record.board_ts)
        else:
            await self.runner.post_board(job)
        if job.writer is not None:
            await job.writer.close(blocks.board_error(part=job.part, context=job.record.context, message=message))
        job.record = await self.store.update(job.record.id, status=ConsultationStatus.FAILED, error=message)

    async def _settle(self, thread: Thread) -> None:
        """When every consultation of the message is final, the reaction and status say so."""
        records = await self.store.for_message(thread.channel, thread.message_ts)
        if any(r.status in ACTIVE_STATUSES for r in records):
            return
        await thread.finished(ok=all(r.status is ConsultationStatus.DONE for r in records))


def _files(record: Consultation) -> list[StoredFile]:
    """Every photo of the part (records from before several photos were one part hold only file_id)."""
    if record.files:
        return list(record.files)
    if record.file_id is None:
        return []
    return [StoredFile(id=record.file_id, name=record.file_name or "the image")]


def _stored_file(file: StoredFile) -> SlackFile:
    """A photo by id: the fetcher asks files.info for a fresh download URL."""
    return SlackFile(
        id=file.id,
        name=file.name,
        mimetype="",
        filetype="",
        size=None,
        url=None,
        is_stub=True,
    )
