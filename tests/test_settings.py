"""Configuration from the environment: names, defaults and the forms an operator would type."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.settings import BotSettings, Trigger
from matrec.choices import CacheStrategy
from matrec.materials import Dimension
from matrec.settings import DEFAULT_MODEL, EngineSettings, settings_error


def test_engine_defaults_are_the_documented_ones() -> None:
    settings = EngineSettings()
    assert (settings.model, settings.concurrency, settings.quorum) == (DEFAULT_MODEL, 8, 4)
    assert settings.cache is CacheStrategy.PRIME
    assert settings.max_image_edge_px == 1568 and settings.max_image_bytes == 25_000_000


def test_weights_left_out_keep_weight_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MATREC_WEIGHTS", '{"cost": 3}')
    weights = EngineSettings().weights
    assert weights[Dimension.COST] == 3 and weights[Dimension.PERFORMANCE] == 1


def test_negative_weights_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MATREC_WEIGHTS", '{"cost": -1}')
    with pytest.raises(ValidationError, match="must not be negative"):
        EngineSettings()


def test_lists_and_prices_come_from_json_and_nested_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MATREC_CONDITIONS", '["dry", "salt spray"]')
    monkeypatch.setenv("MATREC_PRICES__OUTPUT_USD_PER_MTOK", "75")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-x")
    settings = EngineSettings()
    assert settings.conditions == ["dry", "salt spray"]
    assert settings.prices.output_usd_per_mtok == 75
    assert settings.price_table is not None and settings.price_table.output_usd_per_mtok == 75
    assert settings.anthropic_api_key is not None and "sk-ant-x" not in repr(settings)


def test_bot_settings_use_slacks_usual_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1")
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:9/api")
    monkeypatch.setenv("MATREC_MENTION_ONLY_CHANNELS", "C1, C2,")
    monkeypatch.setenv("MATREC_TRIGGER", "mentions")
    settings = BotSettings()
    assert settings.socket_mode
    assert settings.slack_api_url == "http://127.0.0.1:9/api/"
    assert settings.mention_only_channels == frozenset({"C1", "C2"})
    assert settings.trigger is Trigger.MENTIONS
    assert "xoxb-1" not in repr(settings)


def test_without_an_app_token_the_bot_runs_in_http_mode() -> None:
    settings = BotSettings()
    assert not settings.socket_mode
    assert settings.database_url == "sqlite:///matrec.db" and settings.port == 3000


@pytest.mark.parametrize(
    ("variable", "value", "line"),
    [
        ("MATREC_WEIGHTS", "cost=x", "MATREC_WEIGHTS: cost: 'x' is not a number"),
        ("MATREC_WEIGHTS", "price=3", "MATREC_WEIGHTS: unknown dimension 'price'"),
        ("ANTHROPIC_BASE_URL", "localhost:8080", "ANTHROPIC_BASE_URL: expected an http(s) URL"),
        ("ANTHROPIC_BASE_URL", "http://127.0.0.1:port", "ANTHROPIC_BASE_URL: the port in"),
        ("MATREC_CONDITIONS", '["dry",', "MATREC_CONDITIONS: not valid JSON"),
        ("MATREC_BRANCH_EFFORT", "huge", "MATREC_BRANCH_EFFORT: Input should be 'low'"),
        ("MATREC_PRICES__INPUT_USD_PER_MTOK", "two", "MATREC_PRICES__INPUT_USD_PER_MTOK: Input should be"),
    ],
)
def test_a_malformed_engine_variable_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, line: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as raised:
        EngineSettings()
    message = settings_error(EngineSettings, raised.value)
    assert message.startswith(line) and "\n" not in message


def test_weights_take_the_clis_syntax_in_the_variable_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MATREC_WEIGHTS", "cost=3, weight=2")
    weights = EngineSettings().weights
    assert (weights[Dimension.COST], weights[Dimension.WEIGHT], weights[Dimension.PERFORMANCE]) == (3, 2, 1)


def test_conditions_take_semicolons_as_well_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MATREC_CONDITIONS", "dry; salt spray ;")
    assert EngineSettings().conditions == ["dry", "salt spray"]


def test_a_stale_threshold_shorter_than_two_heartbeats_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MATREC_HEARTBEAT_INTERVAL_S", "10")
    monkeypatch.setenv("MATREC_STALE_AFTER_S", "15")
    with pytest.raises(ValidationError) as raised:
        BotSettings()
    assert settings_error(BotSettings, raised.value).startswith("MATREC_STALE_AFTER_S must be at least twice")
