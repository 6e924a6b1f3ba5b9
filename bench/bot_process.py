"""The real `python -m bot` process for benchmarks, and reading what it did in the Slack emulator.

The Slack emulator runs in the benchmark's process with Slack-like rate limits; the Claude
emulator in its own (`bench.claude_process`); the bot in its own, in Socket Mode, with a fresh
SQLite file. Each upload's text carries a part tag (`bench.calls.tag_text`), so the Claude calls
made for it can be told apart from everyone else's.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bench.calls import Call, tag_text
from bench.claude_process import KEY
from bot.settings import BotSettings
from emulators.slack import SlackEmulator
from emulators.slack_workspace import Message
from matrec.materials import PROFILES, MaterialClass

ALICE: Final = "U1"
GENERAL: Final = "C0GENERAL"
START_S: Final = 60.0
STOP_S: Final = 90.0
TEXT: Final = "Wall bracket for a 20 kg pump, indoors near a boiler, about 500 per year."
STARTUP_CALLS: Final = frozenset({"auth.test", "apps.connections.open"})
HTTP_OK: Final = 200
BYTES_PER_KIB: Final = 1024  # /proc/<pid>/status says "kB" and means KiB
BYTES_PER_MB: Final = 1_000_000
# Slack's per-app limits (SLACK.md): chat.postMessage about 1/s per channel, Tier 3 methods about
# 50 a minute, with bursts tolerated; over them, 429 with Retry-After.
POST_PER_CHANNEL_PER_S: Final = 1.0
POST_BURST: Final = 3
TIER3_PER_S: Final = 50 / 60
TIER3_BURST: Final = 20


@dataclass(frozen=True)
class Upload:
    """One upload delivered to the bot."""

    channel: str
    ts: str
    tag: str
    sent_at: float  # time.monotonic()
    envelope_id: str


@dataclass(frozen=True)
class UpdateBudget:
    """The bot's share of Slack's Tier 3 limit (chat.update, reactions.add...), at its defaults."""

    per_s: float
    burst: int

    @classmethod
    def default(cls) -> UpdateBudget:
        """MATREC_UPDATES_PER_MINUTE x MATREC_SLACK_PACING and MATREC_UPDATE_BURST as the bot ships them."""
        fields = BotSettings.model_fields
        per_minute = float(fields["updates_per_minute"].default) * float(fields["slack_pacing"].default)
        return cls(per_minute / 60, int(fields["update_burst"].default))

    @property
    def refill_s(self) -> float:
        """How long an emptied budget takes to fill up again."""
        return self.burst / self.per_s


def slack_like_limits(slack: SlackEmulator) -> None:
    """Per-app limits like Slack's: bursts tolerated, then 429 with Retry-After."""
    slack.rate_limit("chat.postMessage", per_s=POST_PER_CHANNEL_PER_S, burst=POST_BURST, per_channel=True)
    for method in ("chat.update", "reactions.add", "reactions.remove"):
        slack.rate_limit(method, per_s=TIER3_PER_S, burst=TIER3_BURST)


def bot_env(slack: SlackEmulator, claude_url: str, workdir: Path) -> dict[str, str]:
    """The bot's environment: the emulators, a fresh SQLite file, warnings only."""
    keep = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "PYTHONPATH"}}
    return {
        **keep,
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


async def spawn_bot(env: dict[str, str], workdir: Path) -> asyncio.subprocess.Process:
    """Start `python -m bot`; its log goes to bot.log in `workdir`."""
    with open(workdir / "bot.log", "ab") as log:  # noqa: ASYNC230  # a local file: opens at once
        return await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", env=env, cwd=workdir, stderr=log)


async def wait_connected(slack: SlackEmulator, connections_before: int) -> None:
    """Until a new Socket Mode connection is open (an old, dead one may still look open)."""
    await slack.wait_until(
        lambda: any(c.is_open for c in slack.connections[connections_before:]), START_S, "the bot's socket"
    )


@asynccontextmanager
async def running_bot(slack: SlackEmulator, claude_url: str, workdir: Path) -> AsyncIterator[int]:
    """The bot, connected; yields its pid; stopped with SIGTERM at the end."""
    before = len(slack.connections)
    process = await spawn_bot(bot_env(slack, claude_url, workdir), workdir)
    try:
        await wait_connected(slack, before)
        yield process.pid
    finally:
        stop(process)
        await asyncio.wait_for(process.wait(), STOP_S)


def stop(process: asyncio.subprocess.Process, signum: int = signal.SIGTERM) -> None:
    """Send `signum` to our bot process unless it has already exited."""
    if process.returncode is None:
        process.send_signal(signum)


async def upload(slack: SlackEmulator, channel: str, image: bytes, tag: str) -> Upload:
    """A person's upload of `image` in `channel`, delivered over the socket."""
    file = slack.add_file(image, f"{tag}.jpg", "image/jpeg", "jpg", channel=channel)
    event = slack.upload_message(channel, ALICE, f"{TEXT} {tag_text(tag)}", [file])
    sent_at = time.monotonic()
    envelope_id = await slack.deliver_event(event, timeout_s=START_S)
    return Upload(channel, str(event["ts"]), tag, sent_at, envelope_id)


def boards(slack: SlackEmulator, u: Upload) -> list[Message]:
    """The bot's boards in the upload's thread (its other messages, like the score chart it uploads, carry files)."""
    return [m for m in slack.thread(u.channel, u.ts) if m.bot_id and m.ts != u.ts and not m.files]


def shown(message_blocks: list[dict[str, Any]] | None, text: str = "") -> str:
    """Everything a person could read in one version of a message."""
    return text + "\n" + json.dumps(message_blocks or [], ensure_ascii=False)


def final_at(slack: SlackEmulator, u: Upload) -> float | None:
    """When a board in the upload's thread first showed a recommendation (time.monotonic()), if one has.
    Under load a final state the bot cannot afford to update in place is posted as a new message (the
    old board becomes a pointer to it), so every board in the thread counts."""
    times = [v.at for m in boards(slack, u) for v in m.versions if "Best:" in shown(v.blocks, v.text)]
    return min(times, default=None)


def is_final(slack: SlackEmulator, u: Upload) -> bool:
    """Whether a board in the upload's thread shows a recommendation now (latest versions only: cheap to poll)."""
    return showing_final(slack, u) > 0


def showing_final(slack: SlackEmulator, u: Upload) -> int:
    """How many of the thread's boards show a recommendation now (more than one: answered twice)."""
    return sum(
        1 for m in boards(slack, u) if m.versions and "Best:" in shown(m.versions[-1].blocks, m.versions[-1].text)
    )


def reacted(slack: SlackEmulator, u: Upload) -> bool:
    """Whether the bot put its final reaction on the upload."""
    reactions = slack.reactions(u.channel, u.ts)
    return "white_check_mark" in reactions or "warning" in reactions


def entry_done(version_blocks: list[dict[str, Any]] | None, material: MaterialClass) -> bool:
    """Whether this board version shows the class's finished analysis: its line carries a score bar."""
    marker = f"*{PROFILES[material].label}* `"
    for block in version_blocks or []:
        text = block.get("text")
        if isinstance(text, dict) and any(marker in line for line in str(text.get("text", "")).split("\n")):
            return True
    return False


def visible_after_s(slack: SlackEmulator, uploads: list[Upload], calls: list[Call]) -> list[float]:
    """For each branch answered, seconds from its last byte to the first board version showing it."""
    by_tag = {u.tag: u for u in uploads}
    delays: list[float] = []
    for call in calls:
        u = by_tag.get(call.tag or "")
        if u is None or call.material is None or call.finished_at is None or not _answered_branch(call):
            continue
        material = MaterialClass(call.material)
        shown_at = min(v.at for m in boards(slack, u) for v in m.versions if entry_done(v.blocks, material))
        delays.append(shown_at - call.finished_at)
    return delays


def _answered_branch(call: Call) -> bool:
    return call.kind == "branch" and call.status == HTTP_OK and call.stop_reason != "max_tokens"


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set so far (the kernel's high-water mark, VmHWM), in MB (10^6 bytes)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * BYTES_PER_KIB / BYTES_PER_MB
    raise LookupError(f"VmHWM is not in /proc/{pid}/status")
