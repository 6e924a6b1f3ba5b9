"""Who the emulated app is: its workspace, tokens, bot user and granted scopes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

JsonDict = dict[str, Any]

TEST_BOT_TOKEN = "xoxb-test"
TEST_APP_TOKEN = "xapp-test"

# The bot scopes of this project's manifest: the conversations' read scopes serve membership checks
# (conversations.members, users.conversations), mpim:* the group DMs, commands the slash command,
# im:write conversations.open (`/matrec ask` answers in a DM where the bot is not a member).
DEFAULT_BOT_SCOPES: frozenset[str] = frozenset(
    {
        "app_mentions:read",
        "channels:history",
        "groups:history",
        "im:history",
        "mpim:history",
        "channels:read",
        "groups:read",
        "im:read",
        "im:write",
        "mpim:read",
        "chat:write",
        "files:read",
        "files:write",
        "reactions:write",
        "commands",
        "users:read",
    }
)


@dataclass(frozen=True)
class AppIdentity:
    """The app installed in the emulated workspace: ids, tokens and scopes."""

    bot_token: str = TEST_BOT_TOKEN
    app_token: str = TEST_APP_TOKEN
    team_id: str = "T0TEST"
    team_name: str = "Matrec Test"
    team_domain: str = "matrec-test"
    bot_user_id: str = "UBOT"
    bot_user_name: str = "matrec"
    bot_id: str = "BBOT"
    app_id: str = "ATEST"
    verification_token: str = "vtoken-test"
    scopes: frozenset[str] = field(default=DEFAULT_BOT_SCOPES)

    @property
    def workspace_url(self) -> str:
        """The workspace URL auth.test reports, e.g. https://matrec-test.slack.com/."""
        return f"https://{self.team_domain}.slack.com/"

    def authorization(self) -> JsonDict:
        """The entry of an event_callback's `authorizations` list for this bot."""
        return {
            "enterprise_id": None,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "is_bot": True,
            "is_enterprise_install": False,
        }

    def bot_profile(self) -> JsonDict:
        """The `bot_profile` Slack attaches to messages the bot posts."""
        return {
            "id": self.bot_id,
            "deleted": False,
            "name": self.bot_user_name,
            "updated": 1700000000,
            "app_id": self.app_id,
            "icons": {"image_36": "", "image_48": "", "image_72": ""},
            "team_id": self.team_id,
        }
