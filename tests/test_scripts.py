"""The shell scripts: syntax, test.sh's install marker, and the no-key first run (scripts/try.sh)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted((ROOT / "scripts").glob("*.sh"))
SOURCED_ONLY = {"install.sh"}  # sourced by the others, so it leaves the caller's shell options alone
TRY_TIMEOUT_S = 60  # a guard against a hang; a run takes about 8 s
MARKER_AGE_S = 10  # mtimes are moved this far apart, well beyond any filesystem's resolution
REAL_KEY_HINT = "ANTHROPIC_API_KEY=sk-ant-... bash scripts/matrec.sh analyze your-part.jpg"

# Stand-ins for python3 and the venv's python: they log each call, and `-m venv DIR` makes DIR.
_FAKE_PYTHON3 = """#!/usr/bin/env bash
set -euo pipefail
echo "python3 $*" >> "$FAKE_LOG"
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mkdir -p "$3/bin"
  cp "$FAKE_VENV_PYTHON" "$3/bin/python"
fi
"""
_FAKE_VENV_PYTHON = """#!/usr/bin/env bash
set -euo pipefail
echo "venv-python $*" >> "$FAKE_LOG"
if [ "$1 $2" = "-m pip" ] && [ -n "${FAKE_PIP_FAILS:-}" ]; then exit 1; fi
"""


def _bash() -> str:
    """bash by its full path (the tests run it with a controlled PATH)."""
    path = shutil.which("bash")
    assert path is not None, "bash is not installed"
    return path


def _executable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@dataclass
class Sandbox:
    """A copy of the repo's install scripts, with python3 faked, so installs only leave a log."""

    repo: Path
    log: Path
    env: dict[str, str]

    def run(self, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        """Run a script of the copy, e.g. run("scripts/test.sh", "-q")."""
        self.log.write_text("")
        return subprocess.run(
            [_bash(), *args],
            cwd=self.repo,
            env={**self.env, **extra_env},
            capture_output=True,
            text=True,
            check=False,
        )

    def calls(self) -> list[str]:
        """The python calls the last run made."""
        return self.log.read_text().splitlines()

    def age(self, name: str) -> None:
        """Make a file (a marker) older than pyproject.toml."""
        older = (self.repo / "pyproject.toml").stat().st_mtime - MARKER_AGE_S
        os.utime(self.repo / name, (older, older))


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    for name in ("test.sh", "install.sh"):
        shutil.copy(ROOT / "scripts" / name, repo / "scripts" / name)
    (repo / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _executable(bin_dir / "python3", _FAKE_PYTHON3)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_LOG": str(tmp_path / "calls.log"),
        "FAKE_VENV_PYTHON": str(_executable(tmp_path / "venv-python", _FAKE_VENV_PYTHON)),
    }
    return Sandbox(repo, tmp_path / "calls.log", env)


_DEV_INSTALL = [
    "python3 -m venv .venv",
    "venv-python -m pip install --quiet --upgrade pip",
    "venv-python -m pip install --quiet -e .[dev]",
]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_script_is_valid_bash(script: Path) -> None:
    result = subprocess.run([_bash(), "-n", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", [s for s in SCRIPTS if s.name not in SOURCED_ONLY], ids=lambda p: p.name)
def test_every_script_stops_at_the_first_error(script: Path) -> None:
    assert re.search(r"^set -euo pipefail$", script.read_text(), re.MULTILINE)


def test_test_sh_installs_once_then_only_runs_pytest(sandbox: Sandbox) -> None:
    first = sandbox.run("scripts/test.sh", "-q", "tests/test_cli.py")
    assert first.returncode == 0, first.stderr
    assert sandbox.calls() == [*_DEV_INSTALL, "venv-python -m pytest -q tests/test_cli.py"]
    assert sandbox.run("scripts/test.sh", "-x").returncode == 0
    assert sandbox.calls() == ["venv-python -m pytest -x"]


def test_test_sh_reinstalls_when_pyproject_toml_is_newer_than_its_marker(sandbox: Sandbox) -> None:
    sandbox.run("scripts/test.sh")
    sandbox.age(".venv/.installed-dev")
    assert sandbox.run("scripts/test.sh").returncode == 0
    assert sandbox.calls() == [*_DEV_INSTALL, "venv-python -m pytest"]


def test_a_failed_install_is_retried_on_the_next_run(sandbox: Sandbox) -> None:
    failed = sandbox.run("scripts/test.sh", FAKE_PIP_FAILS="1")
    assert failed.returncode != 0
    assert not (sandbox.repo / ".venv" / ".installed-dev").exists()
    sandbox.run("scripts/test.sh")
    assert sandbox.calls()[: len(_DEV_INSTALL)] == _DEV_INSTALL


def test_install_sh_reuses_a_fresh_install_from_test_sh(sandbox: Sandbox) -> None:
    sandbox.run("scripts/test.sh")
    assert sandbox.run("-euc", "source scripts/install.sh").returncode == 0
    assert sandbox.calls() == []


def test_install_sh_installs_the_runtime_when_every_marker_is_stale(sandbox: Sandbox) -> None:
    sandbox.run("scripts/test.sh")
    sandbox.age(".venv/.installed-dev")
    assert sandbox.run("-euc", "source scripts/install.sh").returncode == 0
    assert sandbox.calls() == [
        "python3 -m venv " + str(sandbox.repo / ".venv"),
        "venv-python -m pip install --quiet --upgrade pip",
        "venv-python -m pip install --quiet -e " + str(sandbox.repo),
    ]
    assert sandbox.run("-euc", "source scripts/install.sh").returncode == 0
    assert sandbox.calls() == []  # its own marker is fresh now


def _venv_is_fresh() -> bool:
    pyproject_mtime = (ROOT / "pyproject.toml").stat().st_mtime
    markers = [ROOT / ".venv" / name for name in (".installed", ".installed-dev")]
    return any(m.exists() and m.stat().st_mtime >= pyproject_mtime for m in markers)


@pytest.fixture
def installed_venv() -> None:
    """try.sh installs a missing or stale venv; a test must not reinstall the one it runs in."""
    if not _venv_is_fresh():
        pytest.skip("no fresh install marker in .venv: run `bash scripts/test.sh` (as CI does)")


def _try(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    return subprocess.run(
        [_bash(), str(ROOT / "scripts" / "try.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=TRY_TIMEOUT_S,
        check=False,
    )


def _emulator_port(stderr: str) -> int:
    found = re.search(r"http://127\.0\.0\.1:(\d+)", stderr)
    assert found, stderr
    return int(found.group(1))


@pytest.mark.usefixtures("installed_venv")
def test_try_sh_runs_a_labelled_demo_consultation_without_an_api_key() -> None:
    result = _try()
    assert result.returncode == 0, result.stderr
    before, _, after = result.stderr.partition("end of demo")
    assert "SCRIPTED answers from a local emulator" in before
    assert "they say nothing about the part" in after
    assert REAL_KEY_HINT in after
    assert re.search(r"Best: \w+ +runner-up: \w+ +confidence: \w+", result.stdout), result.stdout
    assert "[bracket.jpg]" in result.stdout  # the piped CLI's line per finished branch
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", _emulator_port(before))):
        pass  # the emulator was stopped on exit


@pytest.mark.usefixtures("installed_venv")
def test_try_sh_passes_extra_arguments_to_the_cli_and_keeps_stdout_clean() -> None:
    result = _try("--json", "--strategy", "weighted")
    assert result.returncode == 0, result.stderr
    (recommendation,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert recommendation["part"] == "bracket.jpg"
    assert recommendation["best"]
    assert REAL_KEY_HINT in result.stderr
