"""Block Kit `action_id`s of the bot's buttons and selects, shared by the renderers and the handlers.

One name per action, so a button drawn by `bot.blocks` and the handler that answers it can never
drift apart. The comment after each says what the element's `value` carries.
"""

from __future__ import annotations

from typing import Final

RERUN: Final = "matrec_rerun"  # consultation id: re-run with the latest follow-up's changes, or none
RERUN_WITH: Final = "matrec_rerun_with"  # turn id: re-run with the changes that follow-up proposed
STRESS: Final = "matrec_stress"  # consultation id: the nested variant, three operating conditions
SPLIT: Final = "matrec_split"  # consultation id: these photos are different parts
DETAILS: Final = "matrec_details"  # consultation id: post the full analyses in the thread
HELPFUL: Final = "matrec_helpful"  # consultation id
NOT_HELPFUL: Final = "matrec_not_helpful"  # consultation id
CHOSE: Final = "matrec_chose"  # static_select; each option's value is "<consultation id>:<class>"
ANALYSE_TEXT: Final = "matrec_analyse_text"  # "<channel>:<message ts>" of the DM text to analyse
UNMUTE: Final = "matrec_unmute"  # "<channel>:<thread ts>"
RERUN_EDITED: Final = "matrec_rerun_edited"  # consultation id: the upload's text was edited

ALL: Final = (
    RERUN,
    RERUN_WITH,
    STRESS,
    SPLIT,
    DETAILS,
    HELPFUL,
    NOT_HELPFUL,
    CHOSE,
    ANALYSE_TEXT,
    UNMUTE,
    RERUN_EDITED,
)
