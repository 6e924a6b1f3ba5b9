"""Re-runs: a finished consultation analysed again in its own thread, saying what changed.

A re-run (or a stress test, the nested variant) is a new consultation record in the same thread:
`parent_id` is the one it re-ran, `message_ts` the synthetic key `<parent's message_ts>:rerun:<n>`
(no Slack message of its own asked for it), its context the part's description plus one line per
added requirement. It reuses the parent's stored prepared photos (no download, the same bytes)
plus the photos people added as thread replies since. `split` turns a multi-photo part into one
consultation per photo (`<message_ts>:split:<n>`).

Two remembered things live in the store, so any instance sees them:

- photos added as replies: prepared at once and kept as images of the consultation they were
  added to, at positions >= PENDING_POSITION; the thread's next re-run takes them all and clears them;
- an edit of the upload's text: a `Turn` of the upload's consultation whose `message_ts` is the
  upload's own ts (a follow-up's is its reply's), status skipped; every later re-run uses the
  latest edited text as the part's description.

A press of a button that starts one of these carries an idempotency key (`bot.interactive` builds
it from the consultation, the action and the board the clicker saw); it is claimed in the store
(the dedupe keys every instance shares) after the checks that may refuse and before anything is
created, so of a double click, or of two people pressing at once on any instances, exactly one acts
and the others get `Duplicate`. The in-process lock and the store check of running re-runs stay
as a second line for starts without a key (a follow-up asking for a re-run).

Deleting the upload cancels its running consultations in this process (their tasks are the
consultant's, found by name); the board ends with a "cancelled" state and the record as FAILED.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from enum import StrEnum
from typing import Any, Final

from bot import blocks
from bot.actions import RERUN, RERUN_EDITED
from bot.blocks.kit import actions as actions_block
from bot.blocks.kit import button
from bot.consultation.intake import Consultant
from bot.consultation.job import TEXT_ONLY_LABEL, JobRunner, prepared_images, stored_images
from bot.consultation.thread import Thread
from bot.files import FileRejected, SlackFile
from bot.store import (
    ACTIVE_STATUSES,
    Consultation,
    ConsultationKind,
    ConsultationStatus,
    Store,
    StoredFile,
    StoredImage,
    Turn,
    TurnStatus,
)
from bot.writer import best_effort, post_reply
from matrec.choices import Mode
from matrec.engine import Part
from matrec.errors import MatrecError
from matrec.images import PreparedImage

log = logging.getLogger(__name__)

PENDING_POSITION: Final = 100  # stored images from here on are reply photos waiting for the next re-run
MAX_ANCESTORS: Final = 100  # how far up the parent chain a re-run looks for earlier requirements
CANCEL_WAIT_S: Final = 10.0  # how long a delete waits for a cancelled consultation to unwind
EDIT_CHARS: Final = 200  # how much of an edited description the re-run's "what changed" quotes
REQUIREMENT_PREFIX: Final = "Added requirement: "
EDIT_PREFIX: Final = "edited description: "  # the "what changed" entry of a re-run after an edit

STILL_RUNNING: Final = "This consultation is still running; try again once its board is final."
ALREADY_RUNNING: Final = "A re-run with these changes is already running in this thread."
NOTHING_TO_SPLIT: Final = "This consultation has a single photo: there is nothing to split."
ALREADY_SPLIT: Final = "These photos were already split into one consultation each."
SPLIT_NOTE: Final = "Splitting into {n} consultations, one per photo."
EDITED_OFFER: Final = "The upload's text was edited. Re-run the consultation with the new description?"
PHOTOS_ADDED: Final = "Got {n}; {they} join the next re-run of this part."
PHOTOS_LEFT_OUT: Final = " {n} more were left out: a part takes at most {cap} photos."
PHOTOS_FULL: Final = "This part already has {cap} photos, the most a consultation takes; I left these out."
CANCELLED: Final = "Cancelled: the upload was deleted."
RERUN_LABEL: Final = "Re-run"

SPLIT_KEY: Final = ":split:"  # in the synthetic message_ts of a consultation split off a multi-photo one
RERUN_KEY: Final = ":rerun:"

TaskKey = tuple[str, ConsultationKind, tuple[str, ...]]


class Duplicate(StrEnum):
    """Why a keyed start did nothing: its key was claimed before, and what came of that press."""

    RUNNING = "running"  # the run it started is still going
    DONE = "done"  # it ended: its board is in the thread


class Reruns:
    """Starts re-runs, stress tests and splits of stored consultations; follows edits and deletes of uploads."""

    def __init__(self, *, runner: JobRunner, store: Store, consultant: Consultant) -> None:
        self.runner = runner
        self.store = store
        self.consultant = consultant
        self._lock = asyncio.Lock()  # one check-then-add at a time, so a double click starts one run
        self._running: set[TaskKey] = set()

    async def start(
        self, consultation_id: str, *, changes: Sequence[str], kind: ConsultationKind, user: str | None
    ) -> Consultation | None:
        """Re-run (or stress-test) a final consultation in its thread with `changes` added; None if not started."""
        started = await self.start_once(consultation_id, changes=changes, kind=kind, user=user, once=None)
        return None if isinstance(started, Duplicate) else started

    async def start_once(
        self,
        consultation_id: str,
        *,
        changes: Sequence[str],
        kind: ConsultationKind,
        user: str | None,
        once: str | None,
    ) -> Consultation | Duplicate | None:
        """`start`, claiming the idempotency key `once` first: Duplicate if it was claimed before."""
        parent = await self.store.get(consultation_id)
        if parent is None:
            return None
        thread = self._thread(parent)
        if parent.status in ACTIVE_STATUSES:
            await thread.notice(STILL_RUNNING)
            return None
        if once is not None and not await self.store.claim(None, parent.channel, once):
            return await self._duplicate_of(parent, kind)
        added = _distinct(changes)
        key: TaskKey = (parent.id, kind, tuple(added))
        async with self._lock:
            duplicate = key in self._running or await self._duplicate(parent, kind, added)
            if not duplicate:
                self._running.add(key)
        if duplicate:
            await thread.notice(ALREADY_RUNNING)
            return None
        try:
            record, prepared = await self._child(parent, thread, added, kind, user)
        except BaseException:
            self._running.discard(key)
            raise
        if record is None:
            self._running.discard(key)
            return None
        mode = Mode.NESTED if kind is ConsultationKind.STRESS else Mode.PARALLEL
        self._spawn(record, self._launch(record, thread, prepared, mode, key))
        return record

    async def split(self, consultation_id: str, user: str | None, *, once: str | None = None) -> list[Consultation]:
        """One new consultation (and board) per photo of a multi-photo consultation, in its thread;
        nothing more (the thread says it was split) if the idempotency key `once` was claimed before."""
        parent = await self.store.get(consultation_id)
        if parent is None:
            return []
        thread = self._thread(parent)
        if parent.status in ACTIVE_STATUSES:
            await thread.notice(STILL_RUNNING)
            return []
        images = prepared_images(_base(await self.store.images(parent.id)))
        count = len(images) or len(parent.files)
        if count < 2:
            await thread.notice(NOTHING_TO_SPLIT)
            return []
        if once is not None and not await self.store.claim(None, parent.channel, once):
            await thread.notice(ALREADY_SPLIT)  # its records are added at once: there is no "still splitting"
            return []
        prefix = f"{parent.message_ts}{SPLIT_KEY}"
        records: list[Consultation] = []
        async with self._lock:
            if not any(child.message_ts.startswith(prefix) for child in await self.store.children(parent.id)):
                records = [self._split_record(parent, index, prefix) for index in range(count)]
                for record in records:
                    await self.store.add(record)
        if not records:
            await thread.notice(ALREADY_SPLIT)
            return []
        log.info("%s split consultation %s into %d", user or "someone", parent.id, count)
        await thread.notice(SPLIT_NOTE.format(n=count))
        for index, record in enumerate(records):
            prepared = (images[index],) if images else None
            files = () if images else tuple(_stub(file) for file in record.files)
            if prepared is not None:
                await self._save(record, prepared)
            self._spawn(record, self._launch(record, thread, prepared, Mode.PARALLEL, None, files=files))
        return records

    async def add_photos(self, consultation_id: str, files: Sequence[SlackFile], user: str | None) -> None:
        """Photos added as a thread reply: prepared now, kept for the thread's next re-run, a Re-run offered."""
        record = await self.store.get(consultation_id)
        photos = [file for file in files if file.looks_like_image]
        if record is None or not photos:
            return
        thread = self._thread(record)
        stored = await self.store.images(record.id)
        pending = [image for image in stored if image.position >= PENDING_POSITION]
        cap = self.runner.settings.max_images_per_message
        room = max(cap - len(_base(stored)) - len(pending), 0)
        if room == 0:
            await thread.notice(PHOTOS_FULL.format(cap=cap))
            return
        kept = photos[:room]
        try:
            data = await asyncio.gather(*(self.runner.fetcher.fetch(file) for file in kept))
            prepared = await self.runner.engine.prepare(Part(images=tuple(data)))
        except (FileRejected, MatrecError) as error:
            await thread.notice(str(error))
            return
        start = max((image.position + 1 for image in pending), default=PENDING_POSITION)
        added = [
            image.model_copy(update={"position": start + index}) for index, image in enumerate(stored_images(prepared))
        ]
        await self.store.save_images(record.id, [*stored, *added])
        n = len(added)
        message = PHOTOS_ADDED.format(n=_photos(n), they="it" if n == 1 else "they")
        if dropped := len(photos) - len(kept):
            message += PHOTOS_LEFT_OUT.format(n=dropped, cap=cap)
        await self._offer(thread, message, RERUN, record.id)

    async def edited(self, channel: str, message_ts: str, new_text: str, user: str | None) -> None:
        """The upload's text was edited: remember the new description and offer a re-run with it."""
        records = await self.store.for_message(channel, message_ts)
        if not records:
            return
        upload = records[0]
        current = await self._edit(upload)
        if " ".join(new_text.split()) == " ".join((current or upload.context).split()):
            return  # Slack also sends message_changed for unfurls and the like: nothing to re-run
        turn = Turn(
            consultation_id=upload.id,
            channel=channel,
            thread_ts=upload.thread_ts,
            message_ts=message_ts,
            user_id=user,
            question=new_text,
            status=TurnStatus.SKIPPED,
        )
        await self.store.add_turn(turn)
        of_upload = _of_upload(await self.store.for_thread(channel, upload.thread_ts), message_ts)
        latest = max((r for r in of_upload if SPLIT_KEY not in r.message_ts), key=_age, default=upload)
        await self._offer(self._thread(latest), EDITED_OFFER, RERUN_EDITED, latest.id)

    async def deleted(self, channel: str, message_ts: str) -> None:
        """The upload was deleted: cancel its consultations running here; their boards say so."""
        records = await self.store.for_message(channel, message_ts)
        if not records:
            return
        in_thread = _of_upload(await self.store.for_thread(channel, records[0].thread_ts), message_ts)
        active = [record for record in in_thread if record.status in ACTIVE_STATUSES]
        names = {_task_name(record) for record in active} | {f"resume {record.id}" for record in active}
        tasks = [task for task in self.consultant.running if task.get_name() in names]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=CANCEL_WAIT_S)
        for record in active:
            if record.owner in (None, self.consultant.owner):  # another instance's run is its own to end
                await self._mark_cancelled(record)

    async def _child(
        self, parent: Consultation, thread: Thread, added: list[str], kind: ConsultationKind, user: str | None
    ) -> tuple[Consultation | None, tuple[PreparedImage, ...]]:
        """The re-run's record (stored, with its images) or None when its photos cannot be had."""
        prepared = await self._parent_images(parent, thread)
        if prepared is None:
            return None, ()
        pending, sources = await self._pending(parent)
        images = await self._with_pending(prepared, pending, thread)
        if images is None:
            return None, ()
        description, earlier = await self._description(parent)
        edit = await self._edit_after(parent)
        requirements = list(added)
        if edit is not None:
            requirements.insert(0, EDIT_PREFIX + _one_line(edit, EDIT_CHARS))
        n = 1 + sum(
            child.message_ts.startswith(parent.message_ts + RERUN_KEY) for child in await self.store.children(parent.id)
        )
        record = Consultation(
            channel=parent.channel,
            thread_ts=parent.thread_ts,
            message_ts=f"{parent.message_ts}{RERUN_KEY}{n}",
            user_id=user,
            file_id=parent.file_id,
            file_name=parent.file_name,
            files=list(parent.files),
            channel_type=parent.channel_type,
            context=compose_context(description, [*earlier, *added]),
            status=ConsultationStatus.RECEIVED,
            owner=self.consultant.owner,
            kind=kind,
            parent_id=parent.id,
            requirements=requirements,
        )
        await self.store.add(record)
        await self._save(record, images)
        for source, kept in sources.items():  # the reply photos went into this re-run: no longer pending
            await self.store.save_images(source, kept)
        return record, images

    async def _parent_images(self, parent: Consultation, thread: Thread) -> tuple[PreparedImage, ...] | None:
        """The parent's photos as analysed (stored), else downloaded again; None (with a notice) if gone."""
        stored = _base(await self.store.images(parent.id))
        if stored:
            return prepared_images(stored)
        files = parent.files or ([StoredFile(id=parent.file_id, name=parent.file_name or "")] if parent.file_id else [])
        if not files:
            return ()  # a description alone
        try:
            data = await asyncio.gather(*(self.runner.fetcher.fetch(_stub(file)) for file in files))
            return await self.runner.engine.prepare(Part(images=tuple(data)))
        except (FileRejected, MatrecError) as error:
            await thread.notice(str(error))
            return None

    async def _with_pending(
        self, prepared: tuple[PreparedImage, ...], pending: list[StoredImage], thread: Thread
    ) -> tuple[PreparedImage, ...] | None:
        """The parent's photos as they are, or, with reply photos added, all of them prepared again
        together so each gets its share of one request (the engine sizes photos by their count)."""
        if not pending:
            return prepared
        cap = self.runner.settings.max_images_per_message
        together = (*prepared, *prepared_images(pending))[: max(cap, len(prepared))]
        try:
            return await self.runner.engine.prepare(Part(images=tuple(image.data for image in together)))
        except MatrecError as error:
            await thread.notice(str(error))
            return None

    async def _pending(self, parent: Consultation) -> tuple[list[StoredImage], dict[str, list[StoredImage]]]:
        """Reply photos waiting anywhere in the thread, and each holder's images without them."""
        pending: list[StoredImage] = []
        kept: dict[str, list[StoredImage]] = {}
        for record in await self.store.for_thread(parent.channel, parent.thread_ts):
            images = await self.store.images(record.id)
            waiting = [image for image in images if image.position >= PENDING_POSITION]
            if waiting:
                pending += waiting
                kept[record.id] = _base(images)
        renumbered = [image.model_copy(update={"position": index}) for index, image in enumerate(pending)]
        return renumbered, kept

    async def _description(self, parent: Consultation) -> tuple[str, list[str]]:
        """The part's description now (the latest edit of the upload, or its text) and the requirements
        the re-runs up the chain added, oldest first."""
        earlier: list[str] = []
        record: Consultation | None = parent
        for _ in range(MAX_ANCESTORS):
            if record is None or record.kind is ConsultationKind.UPLOAD:
                break
            earlier[:0] = record.requirements
            record = await self.store.get(record.parent_id) if record.parent_id else None
        upload = record or parent
        edit = await self._edit(upload)
        earlier = [r for r in earlier if not r.startswith(EDIT_PREFIX)]
        return edit if edit is not None else upload.context, earlier

    async def _edit(self, record: Consultation) -> str | None:
        """The latest edited text of the upload `record` came from, if it was edited."""
        edits = await self._edits(record)
        return edits[-1].question if edits else None

    async def _edit_after(self, parent: Consultation) -> str | None:
        """The upload's latest edit if it came after `parent` started (so `parent` did not see it)."""
        edits = [turn for turn in await self._edits(parent) if turn.created_at > parent.created_at]
        return edits[-1].question if edits else None

    async def _edits(self, record: Consultation) -> list[Turn]:
        upload_ts = _upload_ts(record)
        uploads = await self.store.for_message(record.channel, upload_ts)
        turns = [turn for upload in uploads for turn in await self.store.turns(upload.id)]
        return sorted((t for t in turns if t.message_ts == upload_ts), key=lambda t: t.created_at)

    async def _duplicate_of(self, parent: Consultation, kind: ConsultationKind) -> Duplicate:
        """What a claimed press of `kind` on `parent` came to: a re-run of that kind still going, or not."""
        of_kind = [child for child in await self.store.children(parent.id) if child.kind is kind]
        # No record yet: the press that claimed the key is still preparing its run.
        running = not of_kind or any(child.status in ACTIVE_STATUSES for child in of_kind)
        return Duplicate.RUNNING if running else Duplicate.DONE

    async def _duplicate(self, parent: Consultation, kind: ConsultationKind, added: list[str]) -> bool:
        """A re-run of `parent` with the same kind and changes is still running (on any instance)."""
        return any(
            child.kind is kind
            and child.status in ACTIVE_STATUSES
            and [r for r in _distinct(child.requirements) if not r.startswith(EDIT_PREFIX)] == added
            for child in await self.store.children(parent.id)
        )

    def _split_record(self, parent: Consultation, index: int, prefix: str) -> Consultation:
        file = parent.files[index] if index < len(parent.files) else None
        return Consultation(
            channel=parent.channel,
            thread_ts=parent.thread_ts,
            message_ts=f"{prefix}{index + 1}",
            user_id=parent.user_id,  # the uploader's part still; whoever split it only chose to
            file_id=file.id if file else None,
            file_name=file.name if file else f"photo {index + 1}",
            files=[file] if file else [],
            channel_type=parent.channel_type,
            context=parent.context,
            status=ConsultationStatus.RECEIVED,
            owner=self.consultant.owner,
            kind=ConsultationKind.UPLOAD,
            parent_id=parent.id,
        )

    async def _save(self, record: Consultation, images: Sequence[PreparedImage]) -> None:
        """The run's photos stored with it, for its follow-ups and later re-runs."""
        if images:
            await self.store.save_images(record.id, stored_images(images))

    async def _launch(
        self,
        record: Consultation,
        thread: Thread,
        prepared: Sequence[PreparedImage] | None,
        mode: Mode,
        key: TaskKey | None,
        *,
        files: Sequence[SlackFile] = (),
    ) -> None:
        try:
            await self.runner.launch(record, thread, files=files, prepared=prepared, mode=mode)
        finally:
            if key is not None:
                self._running.discard(key)

    def _spawn(self, record: Consultation, work: Coroutine[Any, Any, None]) -> None:
        self.consultant.spawn(work, name=_task_name(record))

    async def _mark_cancelled(self, record: Consultation) -> None:
        """A consultation whose upload was deleted: its board and record say it was cancelled."""
        current = await self.store.get(record.id)
        if current is None or current.status not in ACTIVE_STATUSES:
            return  # it ended on its own meanwhile
        current = await self.store.update(current.id, status=ConsultationStatus.FAILED, error=CANCELLED)
        if current.board_ts is not None:
            part = current.file_name or TEXT_ONLY_LABEL
            shown = blocks.board_cancelled(part=part, context=current.context, reason=CANCELLED)
            update = self.runner.client.chat_update(
                channel=current.channel, ts=current.board_ts, text=shown.text, blocks=shown.blocks
            )
            await best_effort(update, f"could not mark the board of {current.id} cancelled")
        self.runner.finals.done(current.id)

    def _thread(self, record: Consultation) -> Thread:
        return Thread(self.runner.client, record.channel, record.thread_ts, _upload_ts(record))

    async def _offer(self, thread: Thread, message: str, action_id: str, value: str) -> None:
        """A notice in the thread with one Re-run button."""
        notice = blocks.notice(message)
        row = actions_block(button(RERUN_LABEL, action_id, value, style="primary"))
        offer = blocks.Rendered(text=notice.text, blocks=[*notice.blocks, row])
        posted = post_reply(self.runner.client, channel=thread.channel, thread_ts=thread.thread_ts, rendered=offer)
        await best_effort(posted, f"could not offer a re-run in {thread.channel}")


def compose_context(description: str, requirements: Sequence[str]) -> str:
    """A re-run's context: the part's description, then one line per added requirement."""
    lines = [description.rstrip()] if description.strip() else []
    lines += [REQUIREMENT_PREFIX + requirement for requirement in _distinct(requirements)]
    return "\n".join(lines)


def _distinct(items: Sequence[str]) -> list[str]:
    """Non-blank items, whitespace collapsed, first occurrence kept."""
    seen: dict[str, None] = {}
    for item in items:
        text = " ".join(item.split())
        if text:
            seen.setdefault(text, None)
    return list(seen)


def _base(images: Sequence[StoredImage]) -> list[StoredImage]:
    """The photos a consultation was analysed with (not the reply photos waiting for a re-run)."""
    return [image for image in images if image.position < PENDING_POSITION]


def _upload_ts(record: Consultation) -> str:
    """The ts of the Slack message a consultation goes back to (synthetic keys extend it)."""
    return record.message_ts.split(":", 1)[0]


def _of_upload(records: Sequence[Consultation], message_ts: str) -> list[Consultation]:
    """The records of one upload in its thread: its own, and the re-runs and splits made of them."""
    return [r for r in records if r.message_ts == message_ts or r.message_ts.startswith(message_ts + ":")]


def _age(record: Consultation) -> tuple[object, ...]:
    return (record.created_at, record.message_ts)


def _task_name(record: Consultation) -> str:
    """The consultant's name for the task running `record` (as Consultant.start names upload tasks)."""
    return f"consultation {record.channel}/{record.message_ts}"


def _stub(file: StoredFile) -> SlackFile:
    """A stored file as a Slack Connect-style stub: the fetcher looks it up (files.info) before downloading."""
    return SlackFile(id=file.id, name=file.name, mimetype="", filetype="", size=None, url=None, is_stub=True)


def _photos(n: int) -> str:
    return "1 more photo" if n == 1 else f"{n} more photos"


def _one_line(text: str, limit: int) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


__all__ = ["PENDING_POSITION", "Duplicate", "Reruns", "compose_context"]
