"""The bot's Slack messages as Block Kit: the consultation board, its details, and the bot's replies.

Pure functions: the same input always renders the same message. Model and user text is escaped
(`bot.escape`) and clipped to a budget, so no rendering can ping, link, or break Slack's limits
(`bot.blocks.kit`). `block_text_lines` is the board-size measure the final board is held to.
"""

from bot.blocks.answer import overflow_reply
from bot.blocks.board import (
    MAX_BOARD_LINES,
    RATIONALE_WITHIN_LINES,
    board,
    board_cancelled,
    board_error,
    final_board,
    queued_note,
)
from bot.blocks.details import details
from bot.blocks.kit import Rendered, block_text_lines, text_lines
from bot.blocks.replies import (
    dm_help,
    edited_offer,
    followup_answer_draft,
    followup_answer_final,
    muted_notice,
    notice,
    photos_added_notice,
    rerun_offer,
)

__all__ = [
    "MAX_BOARD_LINES",
    "RATIONALE_WITHIN_LINES",
    "Rendered",
    "block_text_lines",
    "board",
    "board_cancelled",
    "board_error",
    "details",
    "dm_help",
    "edited_offer",
    "final_board",
    "followup_answer_draft",
    "followup_answer_final",
    "muted_notice",
    "notice",
    "overflow_reply",
    "photos_added_notice",
    "queued_note",
    "rerun_offer",
    "text_lines",
]
