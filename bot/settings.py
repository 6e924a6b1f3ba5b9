"""Bot configuration, read once from the environment and `.env` at start-up."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Self

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
SHUTDOWN_GRACE_S = 60.0  # on SIGTERM, how long running consultations may finish before they are cancelled
MAX_PORT = 65535
QUEUE_REFRESH_S = 10.0  # queued boards' "n ahead" is re-rendered at most this often, in one batch


class Trigger(StrEnum):
    """Which uploads start a consultation."""

    ALL = "all"  # every image in a channel the bot is in
    MENTIONS = "mentions"  # only images in messages that mention the bot


def _alias(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class BotSettings(BaseSettings):
    """Slack connection and bot behaviour; Slack values use Slack's usual variable names."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    slack_bot_token: SecretStr | None = Field(default=None, validation_alias=_alias("SLACK_BOT_TOKEN"))
    slack_app_token: SecretStr | None = Field(default=None, validation_alias=_alias("SLACK_APP_TOKEN"))
    slack_signing_secret: SecretStr | None = Field(default=None, validation_alias=_alias("SLACK_SIGNING_SECRET"))
    slack_api_url: str = Field(default=DEFAULT_SLACK_API_URL, validation_alias=_alias("SLACK_API_URL"))
    port: int = Field(default=3000, ge=0, le=65535, validation_alias=_alias("PORT"))
    host: str = Field(default="0.0.0.0", validation_alias=_alias("HOST"))  # noqa: S104 (a container's server)
    database_url: str = Field(default="sqlite:///matrec.db", validation_alias=_alias("DATABASE_URL"))
    trigger: Trigger = Field(default=Trigger.ALL, validation_alias=_alias("MATREC_TRIGGER"))
    mention_only_channels: Annotated[frozenset[str], NoDecode] = Field(
        default=frozenset(), validation_alias=_alias("MATREC_MENTION_ONLY_CHANNELS")
    )
    update_interval_s: float = Field(default=1.0, gt=0, validation_alias=_alias("MATREC_UPDATE_INTERVAL_S"))
    # Slack's app-wide limits the shared Slack budget (bot.budget) paces every instance to, together:
    # calls a minute per method by tier (MATREC_UPDATES_PER_MINUTE is Tier 3: chat.update,
    # reactions.add...), chat.postMessage per channel, calls at once per method, the share of those
    # rates used, and the tokens of each method only final states may take.
    updates_per_minute: float = Field(default=50.0, gt=0, validation_alias=_alias("MATREC_UPDATES_PER_MINUTE"))
    update_burst: int = Field(default=10, ge=1, validation_alias=_alias("MATREC_UPDATE_BURST"))
    slack_tier2_per_minute: float = Field(default=20.0, gt=0, validation_alias=_alias("MATREC_SLACK_TIER2_PER_MINUTE"))
    slack_tier4_per_minute: float = Field(default=100.0, gt=0, validation_alias=_alias("MATREC_SLACK_TIER4_PER_MINUTE"))
    slack_posts_per_channel_per_s: float = Field(
        default=1.0, gt=0, validation_alias=_alias("MATREC_SLACK_POSTS_PER_CHANNEL_PER_S")
    )
    slack_post_burst: int = Field(default=2, ge=1, validation_alias=_alias("MATREC_SLACK_POST_BURST"))
    slack_pacing: float = Field(default=0.9, gt=0, le=1, validation_alias=_alias("MATREC_SLACK_PACING"))
    slack_final_reserve: float = Field(default=3.0, ge=0, validation_alias=_alias("MATREC_SLACK_FINAL_RESERVE"))
    # How long a final state waits for chat.update room before it is posted as a new message instead.
    final_update_wait_s: float = Field(default=0.5, ge=0, validation_alias=_alias("MATREC_FINAL_UPDATE_WAIT_S"))
    max_images_per_message: int = Field(default=6, ge=1, validation_alias=_alias("MATREC_MAX_IMAGES_PER_MESSAGE"))
    dedupe_retention_s: float = Field(default=86_400.0, ge=600, validation_alias=_alias("MATREC_DEDUPE_RETENTION_S"))
    log_level: str = Field(default="INFO", validation_alias=_alias("MATREC_LOG_LEVEL"))
    heartbeat_interval_s: float = Field(default=10.0, gt=0, validation_alias=_alias("MATREC_HEARTBEAT_INTERVAL_S"))
    stale_after_s: float = Field(default=30.0, gt=0, validation_alias=_alias("MATREC_STALE_AFTER_S"))
    queue_refresh_s: float = Field(default=QUEUE_REFRESH_S, gt=0, validation_alias=_alias("MATREC_QUEUE_REFRESH_S"))
    shutdown_grace_s: float = Field(default=SHUTDOWN_GRACE_S, ge=0, validation_alias=_alias("MATREC_SHUTDOWN_GRACE_S"))
    # Follow-up answers stream natively (chat.startStream); off: posted and updated like the boards.
    stream_answers: bool = Field(default=True, validation_alias=_alias("MATREC_STREAM_ANSWERS"))
    # The spend cap (bot.spend): dollars per UTC day, team-wide and per channel; unset, no cap.
    daily_cap_usd: float | None = Field(default=None, gt=0, validation_alias=_alias("MATREC_DAILY_CAP_USD"))
    channel_daily_cap_usd: float | None = Field(
        default=None, gt=0, validation_alias=_alias("MATREC_CHANNEL_DAILY_CAP_USD")
    )
    budget_alert_channel: str | None = Field(default=None, validation_alias=_alias("MATREC_BUDGET_ALERT_CHANNEL"))
    # /metrics is served only when one of these is set: with a bearer token on PORT, and/or on a
    # listener of its own (host:port, e.g. 127.0.0.1:9100); neither set, there is no /metrics.
    metrics_token: SecretStr | None = Field(default=None, validation_alias=_alias("MATREC_METRICS_TOKEN"))
    metrics_bind: str | None = Field(default=None, validation_alias=_alias("MATREC_METRICS_BIND"))

    @field_validator("mention_only_channels", mode="before")
    @classmethod
    def _split_channels(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    @field_validator("metrics_bind")
    @classmethod
    def _host_and_port(cls, value: str | None) -> str | None:
        if not value:
            return None
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or int(port) > MAX_PORT:
            raise ValueError("MATREC_METRICS_BIND must be host:port, e.g. 127.0.0.1:9100")
        return value

    @property
    def metrics_address(self) -> tuple[str, int] | None:
        """Where the separate /metrics listener binds (MATREC_METRICS_BIND), if anywhere."""
        if self.metrics_bind is None:
            return None
        host, _, port = self.metrics_bind.rpartition(":")
        return host.strip("[]"), int(port)

    @model_validator(mode="after")
    def _stale_after_several_beats(self) -> Self:
        if self.stale_after_s < 2 * self.heartbeat_interval_s:
            raise ValueError(
                "MATREC_STALE_AFTER_S must be at least twice MATREC_HEARTBEAT_INTERVAL_S, "
                "or a live instance's work could be taken over between two heartbeats"
            )
        return self

    @property
    def socket_mode(self) -> bool:
        """Socket Mode when an app-level token is set; HTTP mode otherwise."""
        return self.slack_app_token is not None and bool(self.slack_app_token.get_secret_value())
