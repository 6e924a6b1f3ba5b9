"""The `matrec` CLI: live output, the --json shape, exit codes and messages."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from emulators.claude import ClaudeEmulator, Fault
from matrec.cli import main
from matrec.materials import CLASS_ORDER
from matrec.settings import DEFAULT_MODEL
from tests.engine_support import KEY, jpeg_bytes


class _Terminal(io.StringIO):
    """Captured output that claims to be a terminal, so the live board is drawn."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
async def emulator(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ClaudeEmulator]:
    async with ClaudeEmulator(api_key=KEY) as claude:
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", claude.base_url)
        monkeypatch.setenv("MATREC_CACHE", "none")
        yield claude


@pytest.fixture
def photos(tmp_path: Path) -> list[Path]:
    paths = []
    for index, name in enumerate(("bracket.jpg", "housing.jpg")):
        path = tmp_path / name
        path.write_bytes(jpeg_bytes(color=(index * 90, 100, 100)))
        paths.append(path)
    return paths


async def _run(args: list[str], out: io.StringIO | None = None) -> tuple[int, str]:
    out = out if out is not None else io.StringIO()
    code = await asyncio.to_thread(main, args, out)
    return code, out.getvalue()


async def test_json_prints_one_object_per_image_with_the_documented_shape(
    emulator: ClaudeEmulator, photos: list[Path]
) -> None:
    code, output = await _run(["analyze", *map(str, photos), "--context", "pump bracket", "--json"])
    assert code == 0
    objects = [json.loads(line) for line in output.splitlines()]
    assert [o["part"] for o in objects] == ["bracket.jpg", "housing.jpg"]
    for obj in objects:
        assert (obj["best"], obj["runner_up"], obj["confidence"]) == ("metal", "polymer", "medium")
        assert [b["material"] for b in obj["branches"]] == [m.value for m in CLASS_ORDER]
        assert {b["status"] for b in obj["branches"]} == {"ok"}
        assert all(isinstance(b["suitability"], int) and b["error"] is None for b in obj["branches"])
        assert {"input_tokens", "output_tokens", "cache_read_tokens", "cost_usd"} <= obj["usage"].keys()
        assert obj["timing"]["wall_s"] > 0


async def test_a_failed_branch_shows_as_failed_with_its_error_in_json(
    emulator: ClaudeEmulator, photos: list[Path]
) -> None:
    emulator.fail(Fault.REFUSAL, match="wood", times=None)
    code, output = await _run(["analyze", str(photos[0]), "--json"])
    wood = json.loads(output)["branches"][-1]
    assert code == 0
    assert (wood["material"], wood["status"], wood["suitability"]) == ("wood", "failed", None)
    assert "declined" in wood["error"]


async def test_the_live_board_fills_in_branch_by_branch_then_shows_the_recommendation(
    emulator: ClaudeEmulator, photos: list[Path]
) -> None:
    emulator.latency_s = 0.05
    code, output = await _run(["analyze", str(photos[0])], _Terminal())
    assert code == 0
    frames = output.count("bracket.jpg: parallel, claude")
    assert frames >= 8  # the run start, six branches finishing, aggregation, the end
    assert "running" in output and "done" in output
    assert "aggregation: comparing the classes" in output
    assert "Best: Metal" in output and "runner-up: Polymer" in output


async def test_piped_output_logs_each_branch_as_it_finishes_then_the_recommendation(
    emulator: ClaudeEmulator, photos: list[Path]
) -> None:
    emulator.fail(Fault.SERVER_ERROR, match="ceramic", times=None)
    code, output = await _run(["analyze", str(photos[0]), "--strategy", "weighted"])
    lines = output.splitlines()
    assert code == 0
    logged = [line for line in lines if line.startswith("[bracket.jpg]")]
    assert len(logged) == 6
    assert any("Ceramic: failed: Claude had a server error" in line for line in logged)
    assert "Best: Metal" in output and "Could not be assessed: ceramic" in output


async def test_a_folder_expands_to_the_images_inside_it(emulator: ClaudeEmulator, photos: list[Path]) -> None:
    (photos[0].parent / "notes.txt").write_text("not a photo")
    code, output = await _run(["analyze", str(photos[0].parent), "--json", "--strategy", "vote"])
    assert code == 0
    assert [json.loads(line)["part"] for line in output.splitlines()] == ["bracket.jpg", "housing.jpg"]


async def test_ask_runs_a_text_only_consultation(emulator: ClaudeEmulator) -> None:
    code, output = await _run(["ask", "A hinge for an outdoor gate, 5 kg, 200 pieces", "--json"])
    assert code == 0
    assert json.loads(output)["best"] == "metal"
    assert all(r.image_sizes == [] for r in emulator.requests)


async def test_nested_and_single_modes_are_selectable(emulator: ClaudeEmulator, photos: list[Path]) -> None:
    code, nested = await _run(["analyze", str(photos[0]), "--mode", "nested", "--conditions", "dry", "wet", "--json"])
    assert code == 0
    assert len(json.loads(nested)["branches"]) == 12
    code, single = await _run(["analyze", str(photos[0]), "--mode", "single", "--json"])
    assert code == 0
    assert json.loads(single)["mode"] == "single"


async def test_bad_images_exit_2_and_good_ones_still_get_answers(
    emulator: ClaudeEmulator, photos: list[Path], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(jpeg_bytes()[:300])
    code, output = await _run(["analyze", str(photos[0]), str(broken), "--json"])
    good, bad = (json.loads(line) for line in output.splitlines())
    assert code == 2
    assert good["best"] == "metal"
    assert (bad["part"], bad["best"], bad["error_kind"]) == ("broken.jpg", None, "bad_input")
    assert "JPEG" in bad["error"]


async def test_below_the_quorum_exits_1_with_the_reasons(emulator: ClaudeEmulator, photos: list[Path]) -> None:
    emulator.fail(Fault.SERVER_ERROR, times=None)
    code, output = await _run(["ask", "a gear", "--json"])
    assert code == 1
    assert "Only 0 of 6" in json.loads(output)["error"]


def test_a_missing_api_key_is_bad_input_with_one_line_saying_how_to_set_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["ask", "a gear"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "ANTHROPIC_API_KEY is not set: export ANTHROPIC_API_KEY=" in err


def test_a_missing_file_exits_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    assert main(["analyze", "nowhere.jpg", "--json"]) == 2
    assert "cannot read nowhere.jpg" in capsys.readouterr().out


async def test_the_installed_command_runs_as_a_process(emulator: ClaudeEmulator, photos: list[Path]) -> None:
    env = {**os.environ, "ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": emulator.base_url}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "matrec",
        "analyze",
        str(photos[1]),
        "--json",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    assert json.loads(stdout)["best"] == "metal"


async def test_piped_output_keeps_a_long_summary_on_one_unwrapped_line(
    emulator: ClaudeEmulator, photos: list[Path]
) -> None:
    summary = "Metal suits this bracket " + "because it is stiff and cheap to machine, " * 6 + "end."
    emulator.responder = lambda request: (
        {**request.answer, "summary": summary} if request.kind.material == "metal" else None
    )
    code, output = await _run(["analyze", str(photos[0]), "--strategy", "weighted"])
    assert code == 0
    (metal,) = [line for line in output.splitlines() if line.startswith("[bracket.jpg] Metal:")]
    assert metal.startswith(f"[bracket.jpg] Metal: 8/10, recommended. {summary} Grades: ")
    assert "│" not in output and "╭" not in output  # plain text, no panel


async def test_a_part_without_a_recommendation_is_reported_once_on_stderr(
    emulator: ClaudeEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator.fail(Fault.SERVER_ERROR, times=None)
    code, output = await _run(["ask", "a gear"])
    err = capsys.readouterr().err
    assert code == 1
    assert "Only 0 of 6" not in output
    assert len(output.splitlines()) == 6  # the six failed branches, one line each
    assert err.count("Only 0 of 6") == 1
    assert err.startswith("matrec: question: Only 0 of 6") and len(err.splitlines()) == 1


async def test_json_names_the_model_and_the_critical_path_never_exceeds_the_wall_time(
    emulator: ClaudeEmulator, photos: list[Path]
) -> None:
    emulator.latency_s = 0.05
    code, output = await _run(["analyze", *map(str, photos), "--json"])
    assert code == 0
    for obj in map(json.loads, output.splitlines()):
        assert obj["usage"]["model"] == DEFAULT_MODEL
        assert isinstance(obj["usage"]["cost_usd"], float)
        assert 0 < obj["timing"]["critical_path_s"] <= obj["timing"]["wall_s"]


class _ClosedPipe(io.StringIO):
    """Output whose reader has gone away, as after `matrec ... | head -1`."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def _hang_all_but_metal(emulator: ClaudeEmulator) -> None:
    for material in CLASS_ORDER[1:]:
        emulator.fail(Fault.HANG, match=material.value, times=None)


async def test_a_closed_stdout_stops_the_consultation_quietly(
    emulator: ClaudeEmulator, photos: list[Path], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    _hang_all_but_metal(emulator)  # only cancelling the consultation can end it
    code, _ = await _run(["analyze", str(photos[0])], _ClosedPipe())
    assert code == 1
    assert capsys.readouterr().err == ""
    assert caplog.records == []
    assert {r.kind.kind for r in emulator.requests} == {"branch"}


async def test_the_real_process_exits_quietly_when_its_reader_has_gone(
    emulator: ClaudeEmulator, photos: list[Path]
) -> None:
    _hang_all_but_metal(emulator)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "matrec", "analyze", str(photos[0]), stdout=write_end, stderr=subprocess.PIPE
        )
    finally:
        os.close(write_end)
    _, stderr = await process.communicate()
    assert process.returncode == 1
    assert stderr.decode() == ""
