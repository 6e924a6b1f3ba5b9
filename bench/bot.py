"""Bot benchmark: `python -m bench.bot`.

Runs the real bot process (`python -m bot`, Socket Mode) against the Slack emulator (in this
process, with Slack-like rate limits) and the Claude emulator (its own process, 1.0 s per call),
then measures: upload to the first thread reply, a branch finishing to its entry showing in Slack,
Web API calls per consultation, and 20 uploads in 20 channels at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench.engine import KEY, emulator_process, photo
from emulators.slack import SlackEmulator
from emulators.slack_workspace import Message
from matrec.materials import PROFILES, MaterialClass

ALICE = "U1"
SEQUENTIAL_UPLOADS = 8
PARALLEL_UPLOADS = 20
WAIT_S = 180.0
STARTUP_CALLS = {"auth.test", "apps.connections.open"}
TEXT = "Wall bracket for a 20 kg pump, indoors near a boiler, about 500 per year."


@dataclass
class Consultation:
    """One upload and what the bot did with it."""

    channel: str
    ts: str
    sent_at: float


def _bot_messages(slack: SlackEmulator, c: Consultation) -> list[Message]:
    return [m for m in slack.thread(c.channel, c.ts) if m.bot_id and m.ts != c.ts]


def _finished(slack: SlackEmulator, c: Consultation) -> bool:
    reactions = slack.reactions(c.channel, c.ts)
    return "white_check_mark" in reactions or "warning" in reactions


def _entry_done(version_blocks: list[dict[str, Any]] | None, material: MaterialClass) -> bool:
    """Whether this board version shows the class's finished analysis."""
    marker = f"*{PROFILES[material].label}* · *"
    for block in version_blocks or []:
        text = str(block.get("text", {}).get("text", "")) if isinstance(block.get("text"), dict) else ""
        if marker in text and "/10*" in text:
            return True
    return False


@asynccontextmanager
async def bot_process(slack: SlackEmulator, claude_url: str, workdir: Path) -> AsyncIterator[None]:
    """`python -m bot` with its environment pointing at the emulators; stopped with SIGTERM."""
    env = {
        **{k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "PYTHONPATH"}},
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_APP_TOKEN": slack.app_token,
        "SLACK_API_URL": slack.api_url,
        "ANTHROPIC_API_KEY": KEY,
        "ANTHROPIC_BASE_URL": claude_url,
        "DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}",
        "HOST": "127.0.0.1",
        "PORT": "0",
        "MATREC_LOG_LEVEL": "WARNING",
    }
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", env=env, cwd=workdir)
    try:
        await slack.wait_for_socket_connection(60)
        yield
    finally:
        process.terminate()
        await process.wait()


async def _upload(slack: SlackEmulator, channel: str, image: bytes) -> Consultation:
    file = slack.add_file(image, "bracket.jpg", "image/jpeg", "jpg", channel=channel)
    event = slack.upload_message(channel, ALICE, TEXT, [file])
    sent_at = time.monotonic()
    await slack.deliver_event(event)
    return Consultation(channel, str(event["ts"]), sent_at)


async def _claude_timeline(http: aiohttp.ClientSession, claude_url: str) -> list[dict[str, Any]]:
    async with http.get(f"{claude_url}/_emulator/stats") as response:
        return list((await response.json())["timeline"])


async def sequential(slack: SlackEmulator, claude_url: str, http: aiohttp.ClientSession) -> dict[str, Any]:
    """One upload at a time: first-reply latency, branch-to-visible latency, API calls."""
    image = photo()
    first_reply_ms: list[float] = []
    visible_s: list[float] = []
    calls: list[int] = []
    for _ in range(SEQUENTIAL_UPLOADS):
        async with http.post(f"{claude_url}/_emulator/reset"):
            pass
        before = len(slack.calls)
        c = await _upload(slack, "C0GENERAL", image)
        await slack.wait_until(lambda c=c: _finished(slack, c), WAIT_S)  # type: ignore[misc]
        (board,) = _bot_messages(slack, c)
        first_reply_ms.append((board.versions[0].at - c.sent_at) * 1000)
        made = [call for call in slack.calls[before:] if call.method not in STARTUP_CALLS]
        calls.append(len(made))
        timeline = await _claude_timeline(http, claude_url)
        for entry in timeline:
            if entry["kind"] != "branch" or entry["finished_at"] is None:
                continue
            material = MaterialClass(entry["material"])
            shown = next(v.at for v in board.versions if _entry_done(v.blocks, material))
            visible_s.append(shown - entry["finished_at"])
    return {
        "first_reply_ms_median": statistics.median(first_reply_ms),
        "first_reply_ms_max": max(first_reply_ms),
        "branch_visible_s_median": statistics.median(visible_s),
        "branch_visible_s_max": max(visible_s),
        "api_calls_per_consultation_max": max(calls),
        "api_calls_per_consultation": calls,
    }


async def crowd(slack: SlackEmulator, claude_url: str, http: aiohttp.ClientSession) -> dict[str, Any]:
    """20 uploads in 20 channels at once."""
    async with http.post(f"{claude_url}/_emulator/reset"):
        pass
    image = photo()
    channels = [slack.add_channel(f"design-{i}").id for i in range(PARALLEL_UPLOADS)]
    limited_before = sum(slack.ratelimited_count.values())
    started = time.monotonic()
    uploads = await asyncio.gather(*(_upload(slack, channel, image) for channel in channels))
    await slack.wait_until(lambda: all(_finished(slack, c) for c in uploads), WAIT_S)
    wall_s = time.monotonic() - started
    boards = [_bot_messages(slack, c) for c in uploads]
    completed = sum(1 for b in boards if len(b) == 1 and "Best:" in json.dumps(b[0].blocks))
    async with http.get(f"{claude_url}/_emulator/stats") as response:
        stats = await response.json()
    return {
        "uploads": PARALLEL_UPLOADS,
        "completed_with_recommendation": completed,
        "wall_s": wall_s,
        "claude_peak_concurrency": stats["peak_concurrency"],
        "claude_requests": stats["requests"],
        "slack_429s_served": sum(slack.ratelimited_count.values()) - limited_before,
        "slack_429s_by_method": dict(slack.ratelimited_count),
    }


def _slack_like_limits(slack: SlackEmulator) -> None:
    """Per-app limits like Slack's (SLACK.md): bursts tolerated, then 429 with Retry-After."""
    slack.rate_limit("chat.postMessage", per_s=1.0, burst=3, per_channel=True)
    slack.rate_limit("chat.update", per_s=50 / 60, burst=20)
    slack.rate_limit("reactions.add", per_s=50 / 60, burst=20)
    slack.rate_limit("reactions.remove", per_s=50 / 60, burst=20)


async def run(latency_s: float) -> dict[str, Any]:
    """Both scenarios; returns the figures."""
    with tempfile.TemporaryDirectory(prefix="matrec-bench-") as workdir:
        async with (
            SlackEmulator() as slack,
            emulator_process(latency_s) as claude_url,
            aiohttp.ClientSession() as http,
            bot_process(slack, claude_url, Path(workdir)),
        ):
            _slack_like_limits(slack)
            return {
                "sequential": await sequential(slack, claude_url, http),
                "crowd": await crowd(slack, claude_url, http),
            }


def report(figures: dict[str, Any]) -> bool:
    """Print the targets and whether they hold."""
    seq, crowd_ = figures["sequential"], figures["crowd"]
    rows = [
        ("upload to first thread reply, median <= 300 ms", f"{seq['first_reply_ms_median']:.0f} ms "
         f"(max {seq['first_reply_ms_max']:.0f})", seq["first_reply_ms_median"] <= 300),
        ("branch finishing to its entry visible <= 1.5 s", f"median {seq['branch_visible_s_median']:.2f} s, "
         f"max {seq['branch_visible_s_max']:.2f} s", seq["branch_visible_s_max"] <= 1.5),
        ("Web API calls per consultation <= 12", f"max {seq['api_calls_per_consultation_max']} "
         f"{seq['api_calls_per_consultation']}", seq["api_calls_per_consultation_max"] <= 12),
        ("20 uploads in 20 channels: all complete", f"{crowd_['completed_with_recommendation']}/20 in "
         f"{crowd_['wall_s']:.1f} s", crowd_["completed_with_recommendation"] == PARALLEL_UPLOADS),
        ("... Claude concurrency bound (8) holds", str(crowd_["claude_peak_concurrency"]),
         crowd_["claude_peak_concurrency"] <= 8),
        ("... every 429 handled (boards complete)", f"{crowd_['slack_429s_served']} served "
         f"{crowd_['slack_429s_by_method']}", crowd_["completed_with_recommendation"] == PARALLEL_UPLOADS),
    ]  # fmt: skip
    print("\n| target | measured | met |\n|---|---|---|")
    for target, measured, met in rows:
        print(f"| {target} | {measured} | {'yes' if met else 'NO'} |")
    return all(met for _, _, met in rows)


def main() -> None:
    """Run the benchmark; exits 1 if a target is missed."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--latency-s", type=float, default=1.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = asyncio.run(run(args.latency_s))
    ok = report(figures)
    if args.json:
        print(json.dumps(figures, indent=1))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
