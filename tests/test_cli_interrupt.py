"""Ctrl-C: the real process, stopped while Claude hangs, exits 130 with one line and no traceback."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from emulators.claude import ClaudeEmulator, Fault
from matrec.cli import EXIT_INTERRUPTED
from tests.engine_support import KEY, jpeg_bytes

HIDE_CURSOR = b"\x1b[?25l"
SHOW_CURSOR = b"\x1b[?25h"
TERMINAL_ROWS, TERMINAL_COLUMNS = 40, 120
PYTHON = [sys.executable, "-m", "matrec"]


@pytest.fixture
async def hanging_claude() -> AsyncIterator[ClaudeEmulator]:
    async with ClaudeEmulator(api_key=KEY) as claude:
        claude.fail(Fault.HANG, times=None)
        yield claude


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "bracket.jpg"
    path.write_bytes(jpeg_bytes())
    return path


def _env(claude: ClaudeEmulator) -> dict[str, str]:
    return {**os.environ, "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": claude.base_url}


async def test_ctrl_c_while_piped_exits_130_with_one_line_and_no_traceback(
    hanging_claude: ClaudeEmulator, photo: Path
) -> None:
    process = await asyncio.create_subprocess_exec(
        *PYTHON, "analyze", str(photo), env=_env(hanging_claude), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    await hanging_claude.wait_for_requests(1)
    process.send_signal(signal.SIGINT)
    stdout, stderr = await process.communicate()
    assert process.returncode == EXIT_INTERRUPTED
    assert stderr.decode() == "matrec: interrupted\n"
    assert stdout == b""


class _Terminal:
    """A pseudo-terminal for the child's stdout, read as the child writes so it never blocks."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", TERMINAL_ROWS, TERMINAL_COLUMNS, 0, 0))
        self.screen = bytearray()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.master, self._read)

    def _read(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: every writer has closed the terminal
            data = b""
        self.screen += data
        if not data:
            self._loop.remove_reader(self.master)

    def close(self) -> bytes:
        """Everything the child wrote; call once it has exited."""
        self._loop.remove_reader(self.master)
        os.set_blocking(self.master, False)
        while True:
            try:
                data = os.read(self.master, 65536)
            except (BlockingIOError, OSError):
                break
            if not data:
                break
            self.screen += data
        os.close(self.master)
        return bytes(self.screen)


async def test_ctrl_c_on_a_terminal_closes_the_live_view_and_gives_the_cursor_back(
    hanging_claude: ClaudeEmulator, photo: Path
) -> None:
    terminal = _Terminal()
    try:
        process = await asyncio.create_subprocess_exec(
            *PYTHON, "analyze", str(photo), env=_env(hanging_claude), stdout=terminal.slave, stderr=subprocess.PIPE
        )
    finally:
        os.close(terminal.slave)
    await hanging_claude.wait_for_requests(1)
    process.send_signal(signal.SIGINT)
    _, stderr = await process.communicate()
    screen = terminal.close()
    assert process.returncode == EXIT_INTERRUPTED
    assert stderr.decode() == "matrec: interrupted\n"
    assert HIDE_CURSOR in screen and screen.rindex(SHOW_CURSOR) > screen.rindex(HIDE_CURSOR)
    assert b"bracket.jpg: parallel, claude" in screen
