"""From an upload to its board: resolve files, claim the message with its record, run the job.

Claiming the message and recording its consultation happen in one transaction, so a message is
either unclaimed (Slack's retry is the only delivery left, and runs it) or claimed with its record
(a restart resumes it; a late retry is a duplicate). Nothing is ever both resumed and re-run.

Every photo of one message is one part: one consultation whose `files` are all of them (up to
`max_images_per_message`), one board, and every branch sees every photo.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Final

from slack_sdk.errors import SlackApiError

from bot import blocks
from bot.consultation.job import TEXT_ONLY_LABEL, JobRunner
from bot.consultation.thread import EYES, Thread
from bot.escape import escape
from bot.files import FileFetcher, FileRejected, SlackFile
from bot.settings import BotSettings
from bot.store import Consultation, ConsultationStatus, Store, StoredFile
from bot.writer import best_effort, post_reply
from matrec.images import ACCEPTED_FORMATS_TEXT

log = logging.getLogger(__name__)

HELP: Final = (
    "Send me a photo of the part (" + ACCEPTED_FORMATS_TEXT + "), with a line about its job, the load, "
    "temperature, environment and quantity, and I will compare six material classes for it. "
    "You can also just describe the part in words."
)
ASKED_PREVIEW_CHARS: Final = 300  # how much of an asked text the root message of `start_text` repeats
_TEXT_KEY_PREFIX: Final = "ask:"  # dedupe keys of text consultations live apart from message ts keys


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
    channel_type: str | None = None


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

    async def start_text(self, *, channel: str, thread_ts: str | None, user: str | None, text: str, key: str) -> None:
        """A text-only consultation (the Analyse button, `/matrec ask`), started in the background.

        Without `thread_ts` a root message "<name> asked: …" comes first and the board goes under
        it. `key` dedupes: a second call with the same key does nothing.
        """
        if not await self.store.claim(None, channel, _TEXT_KEY_PREFIX + key):
            log.info("text consultation %s already started", key)
            return
        self.spawn(self._text(channel, thread_ts, user, text), name=f"text consultation {channel}/{key}")

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
        record: Consultation | None = None
        if images or (not upload.files and upload.text):  # photos, or a description alone
            record = self._record(upload, kept)
        claimed = await self.store.claim_and_add(
            event_id=upload.event_id, channel=upload.channel, ts=upload.ts, consultations=[record] if record else []
        )
        if not claimed:
            log.info("duplicate delivery of %s/%s ignored", upload.channel, upload.ts)
            return
        thread = Thread(self.runner.client, upload.channel, upload.thread_ts, upload.ts)
        if record is None:
            if upload.mentioned:
                await thread.notice(_skipped_text(skipped) if skipped else HELP)
            return
        notices = [_skipped_text(skipped)] if skipped and upload.mentioned else []
        if dropped := len(images) - len(kept):
            left = "was" if dropped == 1 else "were"
            notices.append(f"I analysed the first {len(kept)} photos together; {dropped} more {left} left out.")
        await thread.react(add=EYES)
        end = await self.runner.launch(record, thread, files=kept, notices=notices)
        await thread.finished(ok=end is ConsultationStatus.DONE)

    async def help_in_dm(self, upload: Upload) -> None:
        """A DM text that asks for nothing yet: a short help with an "Analyse this description" button."""
        if not await self.store.claim(upload.event_id, upload.channel, upload.ts):
            return
        reply = post_reply(
            self.runner.client,
            channel=upload.channel,
            thread_ts=upload.thread_ts,
            rendered=blocks.dm_help(upload.channel, upload.ts),
        )
        await best_effort(reply, f"could not post the help in {upload.channel}")

    async def acknowledge(self, upload: Upload, reaction: str) -> None:
        """Small talk ("thanks!", an emoji) gets a reaction and nothing else."""
        if not await self.store.claim(upload.event_id, upload.channel, upload.ts):
            return
        thread = Thread(self.runner.client, upload.channel, upload.thread_ts, upload.ts)
        await thread.react(add=reaction)

    async def _text(self, channel: str, thread_ts: str | None, user: str | None, text: str) -> None:
        """The text consultation of `start_text`: its root message if needed, its record, its board."""
        if thread_ts is None:
            asked = f"{await self._name(user)} asked: {escape(text[:ASKED_PREVIEW_CHARS])}"
            posted = self.runner.client.chat_postMessage(
                channel=channel, text=asked, blocks=blocks.notice(asked).blocks, unfurl_links=False
            )
            answer = await best_effort(posted, f"could not post the question in {channel}")
            if answer is None:
                return
            thread_ts = str(answer["ts"])
        record = Consultation(
            channel=channel,
            thread_ts=thread_ts,
            message_ts=thread_ts,
            user_id=user,
            context=text,
            status=ConsultationStatus.RECEIVED,
            owner=self.owner,
            channel_type=await self._channel_type(channel),
        )
        await self.store.add(record)
        thread = Thread(self.runner.client, channel, thread_ts, thread_ts)
        await thread.react(add=EYES)
        end = await self.runner.launch(record, thread)
        await thread.finished(ok=end is ConsultationStatus.DONE)

    async def _channel_type(self, channel: str) -> str | None:
        """Slack's type of `channel` ("channel", "group", "im", "mpim"), which no event told us here."""
        answer = await best_effort(
            self.runner.client.conversations_info(channel=channel), f"no type for {channel}", level=logging.INFO
        )
        found = (answer.get("channel") or {}) if answer is not None else {}
        for flag, kind in (("is_im", "im"), ("is_mpim", "mpim"), ("is_private", "group"), ("is_channel", "channel")):
            if found.get(flag):
                return kind
        return "im" if channel.startswith("D") else None

    async def _name(self, user: str | None) -> str:
        """A person's display name, never a mention (the root message must not ping anyone)."""
        if user is None:
            return "Someone"
        try:
            answer = await self.runner.client.users_info(user=user)
        except SlackApiError:
            return "Someone"
        profile = (answer.get("user") or {}).get("profile") or {}
        name = profile.get("display_name") or profile.get("real_name") or (answer.get("user") or {}).get("name")
        return escape(str(name)) if name else "Someone"

    def _record(self, upload: Upload, files: Sequence[SlackFile]) -> Consultation:
        """A new record, owned by this instance (the store stamps its first heartbeat)."""
        first = files[0] if files else None
        return Consultation(
            channel=upload.channel,
            thread_ts=upload.thread_ts,
            message_ts=upload.ts,
            user_id=upload.user,
            file_id=first.id if first else None,
            file_name=first.name if first else None,
            files=[StoredFile(id=f.id, name=f.name) for f in files],
            context=upload.text,
            status=ConsultationStatus.RECEIVED,
            owner=self.owner,
            channel_type=upload.channel_type,
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
