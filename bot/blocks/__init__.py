"""The bot's Slack messages as Block Kit: the consultation board, its details, and the bot's replies.

Pure functions: the same input always renders the same message. Model and user text is escaped
(`bot.escape`) and clipped to a budget, so no rendering can ping, link, or break Slack's limits
(`bot.blocks.kit`).
"""

from bot.blocks.board import board, board_error, notice, queued_note
from bot.blocks.kit import Rendered

__all__ = ["Rendered", "board", "board_error", "notice", "queued_note"]
