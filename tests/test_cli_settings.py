"""Bad settings and bad options: one line naming what to fix, exit code 2, before any call is made."""

from __future__ import annotations

import pytest

from matrec.cli import EXIT_BAD_INPUT, main
from matrec.settings import parse_weights
from tests.engine_support import KEY


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("MATREC_WEIGHTS", "cost=x", "MATREC_WEIGHTS: cost: 'x' is not a number"),
        ("ANTHROPIC_BASE_URL", "localhost:8080", "ANTHROPIC_BASE_URL: expected an http(s) URL"),
        ("MATREC_CONDITIONS", '["dry",', "MATREC_CONDITIONS: not valid JSON"),
        ("MATREC_CONCURRENCY", "0", "MATREC_CONCURRENCY: Input should be greater than or equal to 1"),
        ("MATREC_PRICES", "{bad", "MATREC_PRICES could not be read"),  # a SettingsError, not a ValidationError
    ],
)
def test_a_bad_setting_is_one_line_naming_the_variable_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv(variable, value)
    assert main(["ask", "a gear"]) == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"matrec: bad setting {expected}")
    assert len(captured.err.splitlines()) == 1


def test_weights_on_the_command_line_get_the_settings_message(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="is not a number") as raised:
        parse_weights("cost=x")
    with pytest.raises(SystemExit) as exited:
        main(["ask", "a gear", "--weights", "cost=x"])
    assert exited.value.code == EXIT_BAD_INPUT
    assert f"argument --weights: {raised.value}" in capsys.readouterr().err


@pytest.mark.parametrize("weights", ["cost=3,weight=2", '{"cost": 3}'])
def test_weights_on_the_command_line_take_the_settings_syntax(capsys: pytest.CaptureFixture[str], weights: str) -> None:
    assert main(["ask", "a gear", "--weights", weights]) == EXIT_BAD_INPUT  # parsed; then no API key
    assert "ANTHROPIC_API_KEY is not set" in capsys.readouterr().err


def test_an_out_of_range_option_names_the_option(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    assert main(["ask", "a gear", "--samples", "0"]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err == "matrec: --samples: Input should be greater than or equal to 1\n"
