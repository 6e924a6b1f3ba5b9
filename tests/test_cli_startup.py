"""Start-up cost: `matrec --help` and `import matrec` load none of the heavy libraries."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import matrec

HEAVY = frozenset({"anthropic", "PIL", "rich", "pydantic", "pydantic_settings", "httpx", "httpx2", "asyncio"})


def _top_level_modules_after(code: str) -> set[str]:
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))\n"
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(json.loads(run.stdout.splitlines()[-1]))


@pytest.mark.parametrize("argv", [["--help"], ["analyze", "--help"], ["ask", "--help"]])
def test_help_loads_no_heavy_library(argv: list[str]) -> None:
    code = (
        "import contextlib, io\n"
        "from matrec.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        f"    main({argv!r})"
    )
    assert _top_level_modules_after(code) & HEAVY == set()


def test_importing_the_package_loads_no_heavy_library() -> None:
    assert _top_level_modules_after("import matrec") & HEAVY == set()


def test_python_dash_m_matrec_help_lists_the_commands() -> None:
    run = subprocess.run([sys.executable, "-m", "matrec", "--help"], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert "analyze" in run.stdout and "ask" in run.stdout


def test_every_public_name_resolves_on_first_use() -> None:
    from matrec.engine import Engine

    assert matrec.Engine is Engine
    assert all(getattr(matrec, name) is not None for name in matrec.__all__)
    assert set(matrec.__all__) <= set(dir(matrec))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Engin'"):
        _ = matrec.Engin  # type: ignore[attr-defined]
