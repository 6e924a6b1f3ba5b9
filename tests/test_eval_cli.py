"""`matrec eval`: the estimate first, a yes before spending, the report and headline, exit codes."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from emulators.claude import ClaudeEmulator
from matrec.cli import EFFORT_CHOICES, main
from matrec.models import EFFORT_LEVELS
from tests.engine_support import KEY

ROWS = [
    {"id": "bracket", "text": "Pump bracket, 20 °C, 5 kg load", "expected": ["metal"]},
    {"id": "kiln", "text": "Kiln furniture shelf, 1200 °C", "expected": ["ceramic"]},
]


class _Terminal(io.StringIO):
    """A stream that claims to be a terminal, holding what the user types."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
async def emulator(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ClaudeEmulator]:
    async with ClaudeEmulator(api_key=KEY, latency_s=0.01) as claude:
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", claude.base_url)
        monkeypatch.setenv("MATREC_CACHE", "none")
        monkeypatch.setenv("MATREC_VOTE_SAMPLES", "2")
        yield claude


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "cases.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS), encoding="utf-8")
    return path


async def _eval(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = await asyncio.to_thread(main, ["eval", *args], out)
    return code, out.getvalue()


async def test_without_a_terminal_and_without_yes_it_exits_2_and_spends_nothing(
    emulator: ClaudeEmulator, dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = await _eval(str(dataset))
    assert code == 2
    assert "about 20 calls, about $" in output  # 2 x (single 1 + its vote 2 + parallel 6 + aggregator 1)
    assert "pass --yes" in capsys.readouterr().err
    assert emulator.requests == []


async def test_yes_runs_and_writes_the_report_into_out(emulator: ClaudeEmulator, dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    code, output = await _eval(str(dataset), "--yes", "--out", str(out), "--mode", "single", "parallel")
    assert code == 0
    assert len(emulator.requests) == 20
    assert "| single+claude | 2 |" in output and "| parallel+weighted | 2 |" in output
    assert "scripted, saying nothing about quality" in output
    written = {p.name for p in out.iterdir()}
    expected = "report.md" if importlib.util.find_spec("matrec.eval.report") else "eval-results.json"
    assert expected in written and f"report: {out / expected}" in output
    assert ".matrec-eval-cache" in written


async def test_a_second_run_is_answered_from_the_cache(emulator: ClaudeEmulator, dataset: Path, tmp_path: Path) -> None:
    args = (str(dataset), "--yes", "--out", str(tmp_path / "out"), "--mode", "parallel", "--strategy", "claude")
    assert (await _eval(*args))[0] == 0
    emulator.reset_stats()
    code, output = await _eval(*args)
    assert code == 0 and emulator.requests == []
    assert "| parallel+claude | 2 |" in output


async def test_a_no_at_the_terminal_runs_nothing(
    emulator: ClaudeEmulator, dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    screen = _Terminal()
    monkeypatch.setattr(sys, "stdin", _Terminal("n\n"))
    monkeypatch.setattr(sys, "stderr", screen)
    code, _ = await _eval(str(dataset))
    assert code == 1 and emulator.requests == []
    assert "Run? [y/N]" in screen.getvalue()


async def test_a_yes_at_the_terminal_runs(
    emulator: ClaudeEmulator, dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", _Terminal("y\n"))
    monkeypatch.setattr(sys, "stderr", _Terminal())
    code, _ = await _eval(str(dataset), "--mode", "single", "--strategy", "claude", "--out", str(tmp_path / "o"))
    assert code == 0 and len(emulator.requests) == 2


async def test_a_bad_dataset_exits_2_naming_the_line(
    emulator: ClaudeEmulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(ROWS[0]) + "\n" + '{"id": "x", "text": "t", "expected": ["unobtainium"]}\n')
    code, _ = await _eval(str(bad), "--yes")
    assert code == 2
    assert f"{bad}:2: expected[0]: unknown class 'unobtainium'" in capsys.readouterr().err
    assert emulator.requests == []


async def test_max_cost_stops_the_run_and_says_so(
    emulator: ClaudeEmulator,
    dataset: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MATREC_MAX_CONSULTATIONS", "1")  # one at a time, so the first one's cost is known
    args = ("--yes", "--out", str(tmp_path / "o"), "--mode", "parallel", "--max-cost", "0.000001")
    code, _ = await _eval(str(dataset), *args)
    assert code == 0
    assert "stopped at the cost limit" in capsys.readouterr().err
    assert len(emulator.requests) == 7


async def test_without_an_api_key_it_exits_2_saying_which_variable(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = await _eval(str(dataset), "--yes", "--out", str(tmp_path / "o"))
    assert code == 2
    assert "calls, about $" in output  # the estimate needs no key
    assert "ANTHROPIC_API_KEY is not set" in capsys.readouterr().err
    assert not list((tmp_path / "o").rglob("*.json"))


def test_the_effort_choices_are_the_models_effort_levels() -> None:
    assert EFFORT_CHOICES == EFFORT_LEVELS
