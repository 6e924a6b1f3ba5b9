"""`python -m bot export-feedback OUT.jsonl`: the team's stored choices as an evaluation dataset.

A team's own consultations become its benchmark (`matrec eval OUT.jsonl`). Only "We chose…"
(Feedback.chosen) is a label: it records what engineers decided to make the part from. A
"helpful" rating is not: it judges matrec's own answer, so turning it into ground truth would
grade matrec against itself. Consultations nobody chose for are skipped and counted.

Each exported case is one consultation:

    id         the consultation's id
    text       its context (the requirements matrec was given); Slack user ids left in it by a
               mention of someone other than the bot become "@someone"
    image      photos/<consultation id>-<n>.<ext> next to OUT, the first of its photos that could
               be downloaded; the dataset format takes one image per case, so the others are
               downloaded beside it (same name, another n) but not part of the case
    expected   the class most people chose, each person's latest choice counted once; a tie makes
               every tied class acceptable, the most recently chosen first
    source     "team feedback, <n> people, <channel id> <created date>" (no names or user ids)

Photos are downloaded with the bot token through FileFetcher: files.info gives the URL and the
token is sent only to Slack's own file hosts. A photo that cannot be downloaded leaves the case
text-only, with a warning on stderr; a case left with neither text nor photo is skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path

import aiohttp
import pydantic
import sqlalchemy as sa
from pydantic_settings import SettingsError

from bot.files import FileFetcher, FileRejected, SlackFile
from bot.logs import configure
from bot.service import slack_client
from bot.settings import BotSettings
from bot.store import Consultation, Feedback, Store, StoredFile
from bot.store.urls import SqliteDatabase, parse_database_url
from matrec.errors import ConfigError
from matrec.eval.dataset import Case, dump_cases
from matrec.images import MAX_BYTES, sniff_format
from matrec.materials import MaterialClass
from matrec.settings import settings_error
from matrec.urls import redact_url

PROG = "export-feedback"
PHOTOS_DIR = "photos"
MAX_CONSULTATIONS = 1_000_000  # read at most this many consultations (newest first) in one export
DOWNLOADS_AT_ONCE = 4  # files.info is Tier 4 (100+/min); a few downloads at a time stay well inside it
_EXTENSIONS = {"jpeg": "jpg", "png": "png", "gif": "gif", "webp": "webp", "heif": "heic"}
_USER_ID = re.compile(r"@[UW][A-Z0-9]+\b")  # what plain_text leaves of a mention of a person

Warn = Callable[[str], None]


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote: cases, consultations skipped for want of a choice or of content, photos."""

    exported: int
    skipped_no_choice: int
    skipped_empty: int
    photos: int
    photo_failures: int


def team_choice(feedback: Sequence[Feedback]) -> list[MaterialClass]:
    """The acceptable set: the most-chosen classes, most recently chosen first; empty without a choice."""
    chosen = [f for f in sorted(feedback, key=lambda f: f.updated_at) if f.chosen is not None]
    votes = Counter(f.chosen for f in chosen)
    if not votes:
        return []
    top = max(votes.values())
    newest_first: list[MaterialClass] = []
    for f in reversed(chosen):
        if f.chosen is not None and votes[f.chosen] == top and f.chosen not in newest_first:
            newest_first.append(f.chosen)
    return newest_first


async def export_feedback(
    store: Store,
    out: Path,
    *,
    fetcher: FileFetcher | None,
    since: date | None = None,
    channels: Collection[str] = (),
    warn: Warn,
) -> ExportSummary:
    """Write the consultations with a team choice as a JSONL dataset at `out`; photos only with a fetcher."""
    wanted = list(channels) or await store.channels()
    found = await store.history(wanted, limit=MAX_CONSULTATIONS)
    if len(found) == MAX_CONSULTATIONS:
        warn(f"only the newest {MAX_CONSULTATIONS:,} consultations were read")
    if since is not None:
        start = datetime.combine(since, time(), tzinfo=UTC)
        found = [c for c in found if c.created_at >= start]
    labelled: list[tuple[Consultation, list[Feedback], list[MaterialClass]]] = []
    for consultation in reversed(found):  # oldest first: the file reads as the team's history
        feedback = await store.feedback(consultation.id)
        expected = team_choice(feedback)
        if expected:
            labelled.append((consultation, feedback, expected))
    images: list[str | None] = [None] * len(labelled)
    failures = 0
    if fetcher is not None:
        photos = _Photos(fetcher, out.parent, warn)
        # A refused download is a warning inside its job; anything else (a full disk) stops the export.
        async with asyncio.TaskGroup() as group:
            jobs = [group.create_task(photos.first_of(c)) for c, _, _ in labelled]
        images = [job.result() for job in jobs]
        failures = photos.failures
    cases: list[Case] = []
    for (consultation, feedback, expected), image in zip(labelled, images, strict=True):
        try:
            cases.append(_case(consultation, feedback, expected, image))
        except pydantic.ValidationError as error:
            warn(f"consultation {consultation.id} skipped: {error.errors()[0]['msg'].removeprefix('Value error, ')}")
    out.parent.mkdir(parents=True, exist_ok=True)
    dump_cases(cases, out)
    return ExportSummary(
        exported=len(cases),
        skipped_no_choice=len(found) - len(labelled),
        skipped_empty=len(labelled) - len(cases),
        photos=sum(image is not None for image in images),
        photo_failures=failures,
    )


def _case(
    consultation: Consultation, feedback: Sequence[Feedback], expected: list[MaterialClass], image: str | None
) -> Case:
    votes = Counter(f.chosen for f in feedback if f.chosen is not None)
    people = sum(votes.values())
    tally = ", ".join(f"{c.value} ×{n}" for c, n in votes.most_common())
    return Case(
        id=consultation.id,
        text=_USER_ID.sub("@someone", consultation.context),
        image=image,
        expected=expected,
        reasoning=f"chosen by the team: {tally}",
        source=(
            f"team feedback, {people} {'person' if people == 1 else 'people'}, "
            f"{consultation.channel} {consultation.created_at.date().isoformat()}"
        ),
    )


class _Photos:
    """Downloads consultations' photos into `<folder>/photos/`, a few at a time, failures as warnings."""

    def __init__(self, fetcher: FileFetcher, folder: Path, warn: Warn) -> None:
        self._fetcher = fetcher
        self._folder = folder
        self._warn = warn
        self._bound = asyncio.Semaphore(DOWNLOADS_AT_ONCE)
        self.failures = 0

    async def first_of(self, consultation: Consultation) -> str | None:
        """Download every photo of `consultation`; the first saved one's path relative to the folder."""
        async with asyncio.TaskGroup() as group:
            jobs = [group.create_task(self._save(consultation, n, f)) for n, f in enumerate(consultation.files, 1)]
        return next((path for job in jobs if (path := job.result()) is not None), None)

    async def _save(self, consultation: Consultation, n: int, file: StoredFile) -> str | None:
        # A stub makes the fetcher ask files.info for the URL: the store keeps only the file's id.
        stub = SlackFile(id=file.id, name=file.name, mimetype="", filetype="", size=None, url=None, is_stub=True)
        async with self._bound:
            try:
                data = await self._fetcher.fetch(stub)
            except FileRejected as rejected:
                self.failures += 1
                self._warn(f"consultation {consultation.id}: photo {n} not downloaded ({rejected.reason}): {rejected}")
                return None
        relative = f"{PHOTOS_DIR}/{consultation.id}-{n}.{_EXTENSIONS[sniff_format(data) or 'jpeg']}"
        path = self._folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return relative


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m bot {PROG}",
        description="Turn the team's 'We chose…' feedback into an evaluation dataset (JSONL) for matrec eval.",
    )
    parser.add_argument("out", type=Path, metavar="OUT.jsonl", help="the dataset to write; photos go beside it")
    parser.add_argument("--since", type=date.fromisoformat, metavar="YYYY-MM-DD", help="consultations from this day")
    parser.add_argument(
        "--channel", action="append", default=[], metavar="C...", help="only this channel id (repeatable)"
    )
    parser.add_argument("--no-photos", action="store_true", help="text only: download no photos")
    return parser


def main(argv: Sequence[str]) -> int:
    """Run `export-feedback` with `argv` (the words after it); returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        settings = BotSettings()
    except (pydantic.ValidationError, SettingsError) as error:
        return _fail(settings_error(BotSettings, error))
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else ""
    if not args.no_photos and not token:
        return _fail("SLACK_BOT_TOKEN is not set: it is needed to download the photos (or pass --no-photos)")
    problem = _database_problem(settings.database_url)
    if problem:
        return _fail(problem)
    configure("WARNING", [token])
    channels = [part.strip() for value in args.channel for part in value.split(",") if part.strip()]
    try:
        summary = asyncio.run(_export(settings, None if args.no_photos else token, args, channels))
    except ConfigError as error:
        return _fail(str(error))
    except sa.exc.DBAPIError as error:
        print(
            f"{PROG}: cannot read the database at DATABASE_URL={redact_url(settings.database_url)}: {error.orig}",
            file=sys.stderr,
        )
        return 1
    print(
        f"exported {_count(summary.exported, 'case')} to {args.out} ({summary.photos} with a photo); "
        f"skipped {_count(summary.skipped_no_choice, 'consultation')} without a team choice"
        + (f" and {summary.skipped_empty} with neither text nor photo" if summary.skipped_empty else "")
    )
    return 0


async def _export(
    settings: BotSettings, token: str | None, args: argparse.Namespace, channels: list[str]
) -> ExportSummary:
    async with await Store.open(settings.database_url) as store:
        if token is None:
            return await export_feedback(store, args.out, fetcher=None, since=args.since, channels=channels, warn=_warn)
        async with aiohttp.ClientSession() as session:
            client = slack_client(token, settings.slack_api_url)
            fetcher = FileFetcher(client, session, token=token, api_url=settings.slack_api_url, max_bytes=MAX_BYTES)
            return await export_feedback(
                store, args.out, fetcher=fetcher, since=args.since, channels=channels, warn=_warn
            )


def _database_problem(url: str) -> str | None:
    """Why DATABASE_URL cannot be the bot's store, or None; opening a missing SQLite file would create it."""
    try:
        database = parse_database_url(url)
    except ConfigError as error:
        return str(error)
    if isinstance(database, SqliteDatabase):
        if database.in_memory:
            return "DATABASE_URL names an in-memory database, which holds nothing to export"
        if not Path(database.path).is_file():
            return f"DATABASE_URL: no database at {database.path}; point it at the bot's database"
    return None


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def _fail(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return 2
