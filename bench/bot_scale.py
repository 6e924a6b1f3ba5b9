"""Company-scale load benchmark: `python -m bench.bot_scale [--runs N] [--json]`.

Two real `python -m bot` processes in Socket Mode (one connection each; the Slack emulator sends
each event to one open connection, chosen at random as Slack does) share one PostgreSQL database
(scripts/postgres.sh; a fresh schema per run). The Slack emulator runs in this process with
Slack's per-method, app-wide rate limits by tier (`use_slack_rate_limits`: Tier 2 20, Tier 3 50,
Tier 4 100 calls a minute, bursts of a minute's worth; chat.postMessage one a second per channel,
bursts of 3 as in bench.bot), so the two instances share them as two processes of one app do.
The Claude emulator runs in its own process, thinking off: every call takes L = 1.0 s with its
first byte at F = 0.2 s (20%). It enforces one organisation's rate limits, shaped like a Tier 4
organisation's (4,000 requests, 2,000,000 input and 400,000 output tokens a minute) and sends
the `anthropic-ratelimit-*` headers, which the bots read. The bots share one Claude budget of
C = 8 calls in flight (MATREC_CONCURRENCY, organisation-wide through the database).

Each run: N = 100 uploads, one photo each (distinct 1600x1200 JPEGs), in 20 channels (upload i in
channel i mod 20), sent one every 10 s / N = 0.1 s, so all arrive within 10 s. Measured:
- answered exactly once: uploads with one consultation in the database and a final state in
  Slack (a message in the thread showing a recommendation); duplicates: uploads with more than
  one consultation, more than one message showing a recommendation, or a class answered twice;
- peak Claude calls in flight (the Claude emulator's own count);
- first reply: upload event sent to the first bot message in its thread (p50/p95);
- final state: upload sent to the first message version showing its recommendation (p50/p95);
- last answer to final: the consultation's last Claude answer (the emulator's finish time) to
  that final state (p50/p95);
- total: first upload sent to the last final state, against the ideal schedule below;
- Slack 429s served, by method; Claude 429s served (the organisation's limits); peak RSS (VmHWM)
  of each bot process.

The ideal schedule, from the constants: N x 7 calls (6 branches + 1 aggregation) of L each, C at a
time, is N x 7 x L / C = 87.5 s of fully used slots. Added to it: the first consultation's primer
wait (F: its other five branches start at the primer's first byte, and nothing else has arrived
yet) and the last consultation's aggregation (L: it starts only once that consultation's last
branch is done, so no other call can share its slot time): ideal = N x 7 x L / C + F + L = 88.7 s.
Arrivals (within 10 s) and Slack's writes are left out: they overlap Claude's work.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import asyncpg

from bench.bot_process import (
    Upload,
    boards,
    bot_env,
    final_at,
    is_final,
    peak_rss_mb,
    showing_final,
    spawn_bot,
    stop,
    upload,
    wait_connected,
)
from bench.calls import Call
from bench.claude_process import claude_process
from bench.photos import photo
from bench.targets import Figure, Target, arguments, exit_code, print_json, print_targets
from emulators.claude_ratelimit import OrgLimits
from emulators.slack import SlackEmulator

ROOT: Final = Path(__file__).resolve().parents[1]
UPLOADS: Final = 100  # N
CHANNELS: Final = 20
ARRIVAL_WINDOW_S: Final = 10.0
INSTANCES: Final = 2
LATENCY_S: Final = 1.0  # L
FIRST_TOKEN_S: Final = 0.2  # F: 20% of L
CONCURRENCY: Final = 8  # C, shared by both instances
BRANCHES: Final = 6
CALLS_PER_UPLOAD: Final = BRANCHES + 1
PHOTO_PX: Final = (1600, 1200)
POST_PER_CHANNEL_PER_S: Final = 1.0
POST_BURST: Final = 3
ORG_LIMITS: Final = OrgLimits(
    requests_per_minute=4_000, input_tokens_per_minute=2_000_000, output_tokens_per_minute=400_000
)
WAIT_S: Final = 600.0
STOP_S: Final = 90.0
HTTP_OK: Final = 200
PERCENTILE_95: Final = 0.95

TOTAL_RATIO_TARGET: Final = 1.15
FIRST_REPLY_P95_TARGET_S: Final = 1.0
ANSWER_TO_FINAL_P95_TARGET_S: Final = 2.0
RSS_TARGET_MB: Final = 400.0


def ideal_total_s() -> float:
    """N x 7 x L / C, plus the first primer's wait and the last aggregation (module docstring)."""
    return UPLOADS * CALLS_PER_UPLOAD * LATENCY_S / CONCURRENCY + FIRST_TOKEN_S + LATENCY_S


@dataclass
class ScaleRun:
    """One run's figures (seconds unless named otherwise)."""

    final: int
    duplicates: int
    peak_in_flight: int
    first_reply_p50: float
    first_reply_p95: float
    final_p50: float
    final_p95: float
    answer_to_final_p50: float
    answer_to_final_p95: float
    total_s: float
    slack_429s: dict[str, int] = field(default_factory=dict)
    claude_429s: int = 0
    rss_mb: list[float] = field(default_factory=list)


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, round(share * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def postgres_url() -> str:
    """Start (or find) the throwaway cluster of scripts/postgres.sh; its URL."""
    script = ROOT / "scripts" / "postgres.sh"
    done = subprocess.run(["bash", str(script)], check=True, capture_output=True, text=True)  # noqa: S603, S607
    return done.stdout.strip().splitlines()[-1]


@asynccontextmanager
async def fresh_schema(base: str) -> AsyncIterator[str]:
    """A new, empty schema on the cluster; the URL that puts the bots in it."""
    schema = f"bench_{uuid.uuid4().hex}"
    admin = await asyncpg.connect(base)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        yield f"{base}{'&' if '?' in base else '?'}search_path={schema}"
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


def instance_dirs(workdir: Path) -> list[Path]:
    """A working directory for each bot process (its log goes there)."""
    made = [workdir / f"bot-{n}" for n in range(INSTANCES)]
    for directory in made:
        directory.mkdir()
    return made


@asynccontextmanager
async def bot_instance(slack: SlackEmulator, claude_url: str, database_url: str, workdir: Path) -> AsyncIterator[int]:
    """One bot process on the shared database, connected over its own socket; yields its pid."""
    env = bot_env(slack, claude_url, workdir) | {
        "DATABASE_URL": database_url,
        "MATREC_CONCURRENCY": str(CONCURRENCY),
        "PYTHONPATH": str(ROOT),
    }
    before = len(slack.connections)
    process = await spawn_bot(env, workdir)
    try:
        await wait_connected(slack, before)
        yield process.pid
    finally:
        stop(process)
        await asyncio.wait_for(process.wait(), STOP_S)


def all_final(slack: SlackEmulator, uploads: list[Upload]) -> Callable[[], bool]:
    """A predicate for `wait_until`: every upload has shown its final state. It runs on every change
    in the emulator (this process), so it looks only at uploads still pending."""
    pending = list(uploads)

    def check() -> bool:
        pending[:] = [u for u in pending if not is_final(slack, u)]
        return not pending

    return check


def first_reply_at(slack: SlackEmulator, u: Upload) -> float | None:
    """When the bot first posted in the upload's thread."""
    return min((m.versions[0].at for m in boards(slack, u) if m.versions), default=None)


async def consultations_per_thread(database_url: str) -> Counter[tuple[str, str]]:
    """How many consultations the database holds for each (channel, thread)."""
    base, _, query = database_url.partition("?search_path=")
    schema = query.split("&")[0]
    connection = await asyncpg.connect(base)
    try:
        rows = await connection.fetch(f"SELECT channel, thread_ts FROM {schema}.consultations")  # noqa: S608
    finally:
        await connection.close()
    return Counter((str(r["channel"]), str(r["thread_ts"])) for r in rows)


def duplicates(slack: SlackEmulator, uploads: list[Upload], calls: list[Call], stored: Counter[tuple[str, str]]) -> int:
    """Uploads answered more than once (module docstring)."""
    answered: Counter[tuple[str | None, str | None]] = Counter(
        (c.tag, c.material)
        for c in calls
        if c.kind == "branch" and c.status == HTTP_OK and c.stop_reason != "max_tokens"
    )
    doubled = {tag for (tag, _material), count in answered.items() if count > 1}
    return sum(1 for u in uploads if stored[(u.channel, u.ts)] > 1 or showing_final(slack, u) > 1 or u.tag in doubled)


async def send_all(slack: SlackEmulator, channels: list[str], photos: list[bytes]) -> list[Upload]:
    """Every upload on its schedule: upload i at i x window / N seconds, in channel i mod 20."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    gap_s = ARRIVAL_WINDOW_S / len(photos)

    async def one(i: int, image: bytes) -> Upload:
        # The arrival schedule itself: each upload is sent at its planned time.
        await asyncio.sleep(max(0.0, start + i * gap_s - loop.time()))
        return await upload(slack, channels[i % len(channels)], image, f"scale-{i}")

    return list(await asyncio.gather(*(one(i, image) for i, image in enumerate(photos))))


async def one_run(base_url: str, photos: list[bytes]) -> ScaleRun:
    """Fresh emulators, schema and bots; the uploads on their schedule; the figures."""
    with tempfile.TemporaryDirectory(prefix="matrec-scale-") as workdir:
        async with AsyncExitStack() as stack:
            slack = await stack.enter_async_context(SlackEmulator())
            slack.use_slack_rate_limits()
            for method in ("chat.postMessage", "chat.postEphemeral"):  # one a second per channel, short bursts
                slack.rate_limit(method, per_s=POST_PER_CHANNEL_PER_S, burst=POST_BURST, per_channel=True)
            claude = await stack.enter_async_context(
                claude_process(latency_s=LATENCY_S, first_token_s=FIRST_TOKEN_S, thinking=False, limits=ORG_LIMITS)
            )
            database_url = await stack.enter_async_context(fresh_schema(base_url))
            pids = [
                await stack.enter_async_context(bot_instance(slack, claude.base_url, database_url, directory))
                for directory in instance_dirs(Path(workdir))
            ]
            channels = [slack.add_channel(f"scale-{i}").id for i in range(CHANNELS)]
            await claude.reset()
            started = time.monotonic()
            uploads = await send_all(slack, channels, photos)
            with contextlib.suppress(TimeoutError):  # counted below: uploads without a final state miss the target
                await slack.wait_until(all_final(slack, uploads), WAIT_S, "every final state")
            requests = await claude.requests()
            stored = await consultations_per_thread(database_url)
            rss = [peak_rss_mb(pid) for pid in pids]
            run = measure(slack, uploads, requests.calls, requests.peak_concurrency, stored, started, rss)
            run.claude_429s = sum(requests.rate_limited.values())
            return run


def measure(
    slack: SlackEmulator,
    uploads: list[Upload],
    calls: list[Call],
    peak: int,
    stored: Counter[tuple[str, str]],
    started: float,
    rss: list[float],
) -> ScaleRun:
    """The run's figures from what the emulators and the database recorded."""
    last_answer: dict[str, float] = {}
    for call in calls:
        if call.tag is not None and call.finished_at is not None and call.status == HTTP_OK:
            last_answer[call.tag] = max(last_answer.get(call.tag, 0.0), call.finished_at)
    first_replies, finals, lags = [], [], []
    for u in uploads:
        if (first := first_reply_at(slack, u)) is not None:
            first_replies.append(first - u.sent_at)
        if (final := final_at(slack, u)) is None:
            continue
        finals.append(final - u.sent_at)
        if u.tag in last_answer:
            lags.append(final - last_answer[u.tag])
    final_times = [t for t in (final_at(slack, u) for u in uploads) if t is not None]
    answered = sum(1 for u in uploads if stored[(u.channel, u.ts)] >= 1 and final_at(slack, u) is not None)
    return ScaleRun(
        final=answered,
        duplicates=duplicates(slack, uploads, calls, stored),
        peak_in_flight=peak,
        first_reply_p50=statistics.median(first_replies) if first_replies else 0.0,
        first_reply_p95=percentile(first_replies, PERCENTILE_95),
        final_p50=statistics.median(finals) if finals else 0.0,
        final_p95=percentile(finals, PERCENTILE_95),
        answer_to_final_p50=statistics.median(lags) if lags else 0.0,
        answer_to_final_p95=percentile(lags, PERCENTILE_95),
        total_s=max(final_times, default=started) - started,
        slack_429s=dict(slack.limits.served),
        rss_mb=rss,
    )


def targets(runs: list[ScaleRun]) -> list[Target]:
    """The issue's targets, with the figures reported beside them."""
    ideal = ideal_total_s()
    final = Figure.of([r.final for r in runs])
    dupes = Figure.of([r.duplicates for r in runs])
    peak = Figure.of([r.peak_in_flight for r in runs])
    total = Figure.of([r.total_s for r in runs])
    ratio = Figure.of([r.total_s / ideal for r in runs])
    first95 = Figure.of([r.first_reply_p95 for r in runs])
    lag95 = Figure.of([r.answer_to_final_p95 for r in runs])
    served = Figure.of([sum(r.slack_429s.values()) for r in runs])
    rss = Figure.of([max(r.rss_mb) for r in runs])
    methods = Counter[str]()
    for run in runs:
        methods.update(run.slack_429s)
    by_method = ", ".join(f"{m} {n}" for m, n in methods.most_common()) or "none"
    return [
        Target(f"{UPLOADS} uploads, {INSTANCES} instances: final states, each answered once", final.text(0),
               str(UPLOADS), final.low == UPLOADS),
        Target("... uploads answered more than once", dupes.text(0), "0", dupes.high == 0),
        Target(f"... peak Claude calls in flight <= {CONCURRENCY}", peak.text(0), str(CONCURRENCY),
               peak.high <= CONCURRENCY),
        Target(f"... total, first upload to last final state (<= {TOTAL_RATIO_TARGET} x ideal)", total.text(1, "s"),
               f"{ideal:.1f} s (N x 7 x L / C + F + L)", ratio.median <= TOTAL_RATIO_TARGET),
        Target("... total / ideal", ratio.text(3), "1", None),
        Target(f"... first reply p95 <= {FIRST_REPLY_P95_TARGET_S:g} s", first95.text(2, "s"), "-",
               first95.median <= FIRST_REPLY_P95_TARGET_S),
        Target("... first reply p50", Figure.of([r.first_reply_p50 for r in runs]).text(2, "s"), "-", None),
        Target("... final state p50 / p95 from its upload",
               f"{Figure.of([r.final_p50 for r in runs]).text(1, 's')} / "
               f"{Figure.of([r.final_p95 for r in runs]).text(1, 's')}", "-", None),
        Target(f"... last Claude answer to final state p95 <= {ANSWER_TO_FINAL_P95_TARGET_S:g} s", lag95.text(2, "s"),
               "-", lag95.median <= ANSWER_TO_FINAL_P95_TARGET_S),
        Target("... last Claude answer to final state p50",
               Figure.of([r.answer_to_final_p50 for r in runs]).text(2, "s"), "-", None),
        Target("... Slack 429s served", served.text(0), "0", served.high == 0),
        Target("... Slack 429s by method, all runs", by_method, "-", None),
        Target("... Claude 429s served (the organisation's limits)",
               Figure.of([r.claude_429s for r in runs]).text(0), "0", None),
        Target(f"... peak RSS of the larger instance < {RSS_TARGET_MB:g} MB", rss.text(0, "MB"), "-",
               rss.high < RSS_TARGET_MB),
    ]  # fmt: skip


def main() -> None:
    """Run the benchmark; exits 1 if a target is missed."""
    args = arguments((__doc__ or "").splitlines()[0])
    base_url = postgres_url()
    photos = [photo(seed, PHOTO_PX) for seed in range(UPLOADS)]
    runs = [asyncio.run(one_run(base_url, photos)) for _ in range(args.runs)]
    rows = targets(runs)
    print_targets(rows)
    if args.json:
        print_json(runs)
    sys.exit(exit_code(rows))


if __name__ == "__main__":
    main()
