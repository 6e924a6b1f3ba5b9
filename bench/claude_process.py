"""The Claude emulator in its own process, so its CPU does not skew what a benchmark times.

`python -m bench.claude_process` takes the arguments of `python -m emulators.claude` and runs the
same `ClaudeEmulator`. Its `/_emulator/stats` timeline has no usage and nothing that says which
part a request was about, so this process also serves, on a second loopback port, `GET /requests`:
each request's timeline entry with the usage it reported and the part's tag from its prompt
(`bench.calls.tag_text`). The first line of stdout is "<base URL> <requests URL>".

    async with claude_process(latency_s=1.0, thinking=False) as claude:
        settings = engine_settings(claude.base_url)
        await claude.reset()
        ...
        calls = await claude.calls()
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
from aiohttp import web

from bench.calls import Call, entry
from emulators.claude import ClaudeEmulator
from emulators.claude_ratelimit import OrgLimits, add_limit_arguments, limit_argv, limits_from_arguments

KEY: Final = "bench-key"
FIRST_TOKEN_S: Final = 0.3  # the emulator's default share (0.3) of a 1.0 s call, passed explicitly


@dataclass(frozen=True)
class Requests:
    """What the emulator saw since its last reset."""

    calls: list[Call]
    peak_concurrency: int
    rate_limited: dict[str, int]  # 429s served by the organisation's limits, by limit


@dataclass
class ClaudeService:
    """A running emulator process: its base URL, and reading or resetting its records."""

    base_url: str
    requests_url: str
    http: aiohttp.ClientSession

    async def reset(self) -> None:
        """Forget the recorded requests, the concurrency peak and the prompt cache."""
        async with self.http.post(f"{self.base_url}/_emulator/reset") as response:
            response.raise_for_status()

    async def requests(self) -> Requests:
        """Every request since the last reset, in arrival order, with the concurrency peak."""
        async with self.http.get(self.requests_url) as response:
            body = await response.json()
        limited = {str(k): int(v) for k, v in body["rate_limited"].items()}
        return Requests([Call.of(e) for e in body["requests"]], int(body["peak_concurrency"]), limited)

    async def calls(self) -> list[Call]:
        """Every request since the last reset, in arrival order."""
        return (await self.requests()).calls


@asynccontextmanager
async def claude_process(
    *,
    latency_s: float,
    first_token_s: float = FIRST_TOKEN_S,
    output_tokens_per_s: float | None = None,
    seed: int = 0,
    thinking: bool = False,
    limits: OrgLimits | None = None,
) -> AsyncIterator[ClaudeService]:
    """Start `python -m bench.claude_process` on its own core; stopped with SIGTERM at the end.

    `limits`: the organisation's rate limits, shared by every client of the process (None: none).
    """
    argv = ["--latency-s", str(latency_s), "--first-token-s", str(first_token_s), "--seed", str(seed)]
    if limits is not None:
        argv += limit_argv(limits)
    if output_tokens_per_s is not None:
        argv += ["--output-tokens-per-s", str(output_tokens_per_s)]
    if not thinking:
        argv.append("--no-thinking")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.claude_process", *argv, "--api-key", KEY, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    base_url, requests_url = (await process.stdout.readline()).decode().split()
    try:
        async with aiohttp.ClientSession() as http:
            yield ClaudeService(base_url, requests_url, http)
    finally:
        process.terminate()
        await process.wait()


def _requests_app(emulator: ClaudeEmulator) -> web.Application:
    async def requests(_request: web.Request) -> web.Response:
        body: dict[str, Any] = {
            "peak_concurrency": emulator.peak_concurrency,
            "rate_limited": dict(emulator.rate_limited),
            "requests": [entry(r) for r in emulator.requests],
        }
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/requests", requests)
    return app


async def _serve(args: argparse.Namespace) -> None:
    emulator = ClaudeEmulator(
        api_key=args.api_key,
        latency_s=args.latency_s,
        first_token_s=args.first_token_s,
        output_tokens_per_s=args.output_tokens_per_s,
        seed=args.seed,
        thinking=not args.no_thinking,
        limits=limits_from_arguments(args),
    )
    runner = web.AppRunner(_requests_app(emulator), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    async with emulator:
        await site.start()
        port = runner.addresses[0][1]
        print(emulator.base_url, f"http://127.0.0.1:{port}/requests", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()


def main() -> None:
    """`python -m bench.claude_process --latency-s 1.0 --no-thinking`: the emulator plus GET /requests."""
    parser = argparse.ArgumentParser(description="The Claude emulator, with each request's usage and part tag")
    parser.add_argument("--latency-s", type=float, default=1.0)
    parser.add_argument("--first-token-s", type=float, default=None)
    parser.add_argument("--output-tokens-per-s", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-thinking", action="store_true")
    parser.add_argument("--api-key", default="test-key")
    add_limit_arguments(parser)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
