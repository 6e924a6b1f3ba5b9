"""`python -m bot export-feedback` end to end: real consultations and clicks on the Slack emulator,
the bot stopped, the store exported, and the file read back with matrec's own dataset loader."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import aiohttp

from bot import actions
from bot.export import ExportSummary, export_feedback, team_choice
from bot.files import FileFetcher
from bot.service import slack_client
from bot.store import Consultation, Feedback, Rating, Store
from emulators.claude import ClaudeEmulator
from emulators.slack import SlackEmulator
from emulators.slack_faults import TransportFault
from matrec.eval.dataset import Dataset, load_dataset
from matrec.images import MAX_BYTES
from matrec.materials import MaterialClass
from tests.bot_support import ALICE, BOB, GENERAL, WAIT_S, Upload, bot_settings, rendered, running_bot, wait_finished
from tests.engine_support import jpeg_bytes

M = MaterialClass
RED = jpeg_bytes(640, 480, (200, 40, 40))
GREEN = jpeg_bytes(640, 480, (40, 200, 40))
BLUE = jpeg_bytes(640, 480, (40, 40, 200))
GREY = jpeg_bytes(640, 480)
PROCESS_S = 60.0

Click = tuple[str, str, str, str]  # (user, action id, chosen class or "", the board text to wait for after it)


async def consult(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path, parts: Sequence[tuple[list[bytes], str, list[Click]]]
) -> list[Consultation]:
    """Run the bot; upload each (photos, text) as alice, make its clicks one by one; stop the bot; the records."""
    records: list[Consultation] = []
    async with (
        running_bot(slack, claude, bot_settings(slack, tmp_path), max_retries=0),
        await Store.open(database(tmp_path)) as store,
    ):
        for photos, text, clicks in parts:
            files = [slack.add_file(p, f"view{n}.jpg", "image/jpeg", "jpg") for n, p in enumerate(photos, 1)]
            event = slack.upload_message(GENERAL, ALICE, text, files)
            await slack.deliver_event(event)
            sent = Upload.of(event)
            await wait_finished(slack, sent)
            (record,) = await store.for_message(sent.channel, sent.ts)
            board = record.board_ts
            assert board is not None
            for user, action, chosen, shown in clicks:
                selected = f"{record.id}:{chosen}" if chosen else None
                await slack.click(user, GENERAL, board, action, selected=selected)
                await slack.wait_until(_showing(slack, board, shown), WAIT_S, what=shown)
            records.append(record)
    return records


def _showing(slack: SlackEmulator, board: str, text: str) -> Callable[[], bool]:
    return lambda: text in rendered(slack.message(GENERAL, board))


def database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'bot.db'}"


async def export(
    slack: SlackEmulator,
    tmp_path: Path,
    out: Path,
    *,
    photos: bool = True,
    since: date | None = None,
    channels: Collection[str] = (),
) -> tuple[ExportSummary, list[str]]:
    """export_feedback on the bot's database with a fetcher on the emulator; the summary and warnings."""
    warnings: list[str] = []
    async with await Store.open(database(tmp_path)) as store, aiohttp.ClientSession() as session:
        client = slack_client(slack.bot_token, slack.api_url)
        fetcher = FileFetcher(client, session, token=slack.bot_token, api_url=slack.api_url, max_bytes=MAX_BYTES)
        summary = await export_feedback(
            store,
            out,
            fetcher=fetcher if photos else None,
            since=since,
            channels=channels,
            warn=warnings.append,
        )
    return summary, warnings


def everything_written(folder: Path) -> bytes:
    """Every file under `folder`, names and contents, for a search for secrets."""
    return b"".join(p.name.encode() + p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def case_of(dataset: Dataset, record: Consultation) -> dict[str, object]:
    (case,) = [c for c in dataset.cases if c.id == record.id]
    return case.model_dump()


async def test_the_team_choices_become_labels_with_their_photos_and_nothing_else_does(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    changed, tied, helpful, silent = await consult(
        slack,
        claude,
        tmp_path,
        [
            (
                [RED],
                "Pump bracket, 20 kg, indoors",
                [
                    (ALICE, actions.CHOSE, "metal", "Metal ×1"),
                    (ALICE, actions.CHOSE, "polymer", "Polymer ×1"),  # a change replaces her metal
                ],
            ),
            (
                [GREEN],
                "Kiln shelf support, 1200 °C",
                [(ALICE, actions.CHOSE, "ceramic", "Ceramic ×1"), (BOB, actions.CHOSE, "composite", "Composite ×1")],
            ),
            ([BLUE], "Garden bench slats", [(ALICE, actions.HELPFUL, "", "1 found it helpful")]),
            ([GREY], "Drone arm", []),
        ],
    )
    out = tmp_path / "export" / "team.jsonl"

    summary, warnings = await export(slack, tmp_path, out)

    assert (summary.exported, summary.skipped_no_choice, summary.photos, warnings) == (2, 2, 2, [])
    dataset = load_dataset(out)
    assert [c.id for c in dataset.cases] == [changed.id, tied.id]  # oldest first; helpful-only and silent left out
    first, second = case_of(dataset, changed), case_of(dataset, tied)
    assert first["expected"] == [M.POLYMER]  # alice's change counted once, her latest (not a metal-polymer tie)
    assert second["expected"] == [M.COMPOSITE, M.CERAMIC]  # a tie: both acceptable, the latest choice first
    assert first["text"] == "Pump bracket, 20 kg, indoors" and second["text"] == "Kiln shelf support, 1200 °C"
    assert first["reference_scores"] is None
    today = datetime.now(UTC).date().isoformat()
    assert first["source"] == f"team feedback, 1 person, {GENERAL} {today}"
    assert second["source"] == f"team feedback, 2 people, {GENERAL} {today}"
    assert first["image"] == f"photos/{changed.id}-1.jpg"
    assert (out.parent / f"photos/{changed.id}-1.jpg").read_bytes() == RED
    assert (out.parent / f"photos/{tied.id}-1.jpg").read_bytes() == GREEN
    written = everything_written(out.parent)
    assert slack.bot_token.encode() not in written
    assert ALICE.encode() not in out.read_bytes() and BOB.encode() not in out.read_bytes()
    assert not list(out.parent.glob(f"photos/{helpful.id}*")) and not list(out.parent.glob(f"photos/{silent.id}*"))


async def test_a_photo_that_cannot_be_downloaded_leaves_its_case_text_only_with_a_warning(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    (record,) = await consult(
        slack, claude, tmp_path, [([RED], "Hot-water gasket", [(BOB, actions.CHOSE, "elastomer", "Elastomer ×1")])]
    )
    slack.fail_transport("files.info", TransportFault.RESET, count=5)  # more than the client's retries
    out = tmp_path / "team.jsonl"

    summary, warnings = await export(slack, tmp_path, out)

    (case,) = load_dataset(out).cases
    assert (case.id, case.image, case.text, case.expected) == (record.id, None, "Hot-water gasket", [M.ELASTOMER])
    assert (summary.photos, summary.photo_failures) == (0, 1)
    assert len(warnings) == 1 and record.id in warnings[0] and "photo 1" in warnings[0]
    assert not (tmp_path / "photos").exists()


async def test_since_channels_and_no_photos_narrow_the_export(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    (record,) = await consult(
        slack, claude, tmp_path, [([RED], "Food-contact housing", [(ALICE, actions.CHOSE, "polymer", "Polymer ×1")])]
    )
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    out = tmp_path / "team.jsonl"
    downloads_before = len(slack.downloads)

    assert (await export(slack, tmp_path, out, photos=False, since=tomorrow))[0].exported == 0
    assert (await export(slack, tmp_path, out, photos=False, channels=["C0OTHER"]))[0].exported == 0
    summary, _ = await export(slack, tmp_path, out, photos=False, since=tomorrow - timedelta(days=2))

    assert summary.exported == 1 and summary.photos == 0
    (case,) = load_dataset(out).cases
    assert (case.id, case.image) == (record.id, None)
    assert len(slack.downloads) == downloads_before  # nothing fetched without a fetcher
    assert not (tmp_path / "photos").exists()


async def test_python_m_bot_export_feedback_writes_the_dataset_and_says_what_it_skipped(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    chosen, _ = await consult(
        slack,
        claude,
        tmp_path,
        [
            ([RED], f"Wall bracket, <@{BOB}> knows the load", [(ALICE, actions.CHOSE, "metal", "Metal ×1")]),
            ([GREEN], "Gear", []),
        ],
    )
    env = _env(tmp_path, SLACK_BOT_TOKEN=slack.bot_token, SLACK_API_URL=slack.api_url, DATABASE_URL=database(tmp_path))

    code, stdout, stderr = await _run(["export-feedback", "out/team.jsonl", "--channel", GENERAL], env, tmp_path)

    assert (code, stderr) == (0, "")
    assert stdout.strip() == (
        "exported 1 case to out/team.jsonl (1 with a photo); skipped 1 consultation without a team choice"
    )
    (case,) = load_dataset(tmp_path / "out" / "team.jsonl").cases
    assert (case.id, case.expected) == (chosen.id, [M.METAL])
    assert case.text == "Wall bracket, @someone knows the load"  # the context matrec got, minus a user id
    assert (tmp_path / "out" / str(case.image)).read_bytes() == RED
    written = everything_written(tmp_path / "out")
    assert slack.bot_token.encode() not in written + stdout.encode() and BOB.encode() not in written


async def test_photos_without_a_bot_token_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "bot.db").touch()
    code, _, stderr = await _run(
        ["export-feedback", "x.jsonl"], _env(tmp_path, DATABASE_URL=database(tmp_path)), tmp_path
    )
    assert code == 2
    assert stderr.strip().splitlines() == [
        "export-feedback: SLACK_BOT_TOKEN is not set: it is needed to download the photos (or pass --no-photos)"
    ]


async def test_a_missing_database_file_is_refused_rather_than_created(tmp_path: Path) -> None:
    env = _env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'nowhere.db'}")
    code, _, stderr = await _run(["export-feedback", "x.jsonl", "--no-photos"], env, tmp_path)
    assert code == 2 and "no database at" in stderr and len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "nowhere.db").exists() and not (tmp_path / "x.jsonl").exists()


async def test_a_case_shows_the_first_of_several_photos_and_the_others_are_saved_beside_it(
    slack: SlackEmulator, claude: ClaudeEmulator, tmp_path: Path
) -> None:
    (record,) = await consult(
        slack, claude, tmp_path, [([RED, GREEN], "Two views of a hinge", [(BOB, actions.CHOSE, "metal", "Metal ×1")])]
    )
    out = tmp_path / "team.jsonl"

    summary, warnings = await export(slack, tmp_path, out)

    (case,) = load_dataset(out).cases
    assert (summary.photos, warnings, case.image) == (1, [], f"photos/{record.id}-1.jpg")
    assert (tmp_path / f"photos/{record.id}-1.jpg").read_bytes() == RED
    assert (tmp_path / f"photos/{record.id}-2.jpg").read_bytes() == GREEN


def test_the_most_chosen_class_wins_and_a_tie_lists_the_latest_first() -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)

    def said(user: str, minute: int, chosen: MaterialClass | None, rating: Rating | None = None) -> Feedback:
        return Feedback(
            consultation_id="c",
            user_id=user,
            chosen=chosen,
            rating=rating,
            updated_at=start + timedelta(minutes=minute),
        )

    assert team_choice([said("a", 1, M.WOOD), said("b", 2, M.METAL), said("c", 3, M.WOOD)]) == [M.WOOD]
    assert team_choice([said("b", 5, M.METAL), said("a", 1, M.WOOD)]) == [M.METAL, M.WOOD]
    assert team_choice([said("a", 1, None, "helpful"), said("b", 2, None, "not_helpful")]) == []


def _env(tmp_path: Path, **values: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "PYTHONPATH", "SYSTEMROOT"}}
    return {**keep, **values}


async def _run(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    # cwd is tmp_path: `-m bot` must find this checkout's packages, as the editable install may be another's.
    env = {**env, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), env.get("PYTHONPATH", "")])}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), PROCESS_S)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()
