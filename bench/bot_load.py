"""Bot load benchmark: `python -m bench.bot_load [--runs N] [--json]`.

50 uploads of 12-megapixel photos at once to one `python -m bot` process (Socket Mode; the Slack
emulator in this process with Slack-like rate limits, the Claude emulator in its own with thinking
off, L = 1.0 s per call, F = 0.3 s). The photos are 50 distinct 4032x3024 JPEGs, noise over a
gradient, about 5 MB each as a phone's are; one upload in each of 50 channels, all delivered at
once (in one channel, Slack's one post a second per channel would pace the boards instead).

Measured per run, on a fresh bot process:
- boards final: uploads whose one board shows a recommendation (target: all 50);
- peak RSS: the bot process's VmHWM from /proc/<pid>/status (the kernel's high-water mark of its
  resident set, so no sampling can miss the peak), read once every board is final; MB = 10^6
  bytes. Target: under 500 MB;
- time from the first upload to the last board final, against the floor of 350 Claude calls
  (50 x 7) x L / 8 (the bot's Claude concurrency bound) = 43.75 s. (A final state that Slack's
  chat.update budget cannot afford in time is posted as a new message, so that budget sets no
  floor.) The bot admits 4 consultations at a time (MATREC_MAX_CONSULTATIONS), so Claude slots
  idle around primers and aggregations; the floor leaves that out.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bench.bot_process import final_at, is_final, peak_rss_mb, running_bot, slack_like_limits, upload
from bench.claude_process import FIRST_TOKEN_S, claude_process
from bench.photos import PHONE_PHOTO_PX, photo
from bench.targets import Figure, Target, arguments, exit_code, print_json, print_targets
from emulators.slack import SlackEmulator

LATENCY_S: Final = 1.0  # L
UPLOADS: Final = 50
CALLS_PER_UPLOAD: Final = 7
CLAUDE_CONCURRENCY: Final = 8  # EngineSettings.concurrency, the bot's default
PEAK_RSS_TARGET_MB: Final = 500.0
WAIT_S: Final = 300.0


@dataclass(frozen=True)
class LoadRun:
    """One run: how many boards ended final, the bot's peak RSS, when the last board was final."""

    final: int
    started_rss_mb: float  # VmHWM once connected, before any upload
    peak_rss_mb: float
    all_final_s: float


async def one_run(photos: list[bytes]) -> LoadRun:
    """Fresh emulators and bot; every photo uploaded at once, each in its own channel."""
    with tempfile.TemporaryDirectory(prefix="matrec-bench-") as workdir:
        async with (
            SlackEmulator() as slack,
            claude_process(latency_s=LATENCY_S, first_token_s=FIRST_TOKEN_S, thinking=False) as claude,
            running_bot(slack, claude.base_url, Path(workdir)) as pid,
        ):
            slack_like_limits(slack)
            started_rss_mb = peak_rss_mb(pid)
            channels = [slack.add_channel(f"load-{i}").id for i in range(len(photos))]
            started = time.monotonic()
            pairs = enumerate(zip(channels, photos, strict=True))
            uploads = await asyncio.gather(
                *(upload(slack, channel, image, f"load-{i}") for i, (channel, image) in pairs)
            )
            with contextlib.suppress(TimeoutError):  # counted below: boards not final miss the target
                await slack.wait_until(lambda: all(is_final(slack, u) for u in uploads), WAIT_S, "every board final")
            finals = [f for f in (final_at(slack, u) for u in uploads) if f is not None]
            return LoadRun(len(finals), started_rss_mb, peak_rss_mb(pid), max(finals, default=started) - started)


def targets(runs: list[LoadRun]) -> list[Target]:
    """Both targets and the time beside them."""
    final = Figure.of([r.final for r in runs])
    peak = Figure.of([r.peak_rss_mb for r in runs])
    started = Figure.of([r.started_rss_mb for r in runs])
    wall = Figure.of([r.all_final_s for r in runs])
    floor_s = UPLOADS * CALLS_PER_UPLOAD * LATENCY_S / CLAUDE_CONCURRENCY
    return [
        Target("50 uploads of 12-megapixel photos at once: boards final with a recommendation", final.text(0),
               str(UPLOADS), final.low == UPLOADS),
        Target("... peak RSS of the bot process (VmHWM) < 500 MB", peak.text(0, "MB"), "-",
               peak.high < PEAK_RSS_TARGET_MB),
        Target("... its VmHWM once started, before the uploads", started.text(0, "MB"), "-", None),
        Target("... first upload to the last board final", wall.text(1, "s"),
               f"{floor_s:g} s (350 x L / 8)", None),
    ]  # fmt: skip


def main() -> None:
    """Run the benchmark; exits 1 if a target is missed."""
    args = arguments((__doc__ or "").splitlines()[0])
    photos = [photo(seed, PHONE_PHOTO_PX) for seed in range(UPLOADS)]
    sizes_mb = sorted(len(p) / 1_000_000 for p in photos)
    width, height = PHONE_PHOTO_PX
    print(f"\n{UPLOADS} photos of {width}x{height}, {sizes_mb[0]:.1f}-{sizes_mb[-1]:.1f} MB each")
    runs = [asyncio.run(one_run(photos)) for _ in range(args.runs)]
    rows = targets(runs)
    print_targets(rows)
    if args.json:
        print_json(runs)
    sys.exit(exit_code(rows))


if __name__ == "__main__":
    main()
