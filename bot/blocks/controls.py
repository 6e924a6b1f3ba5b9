"""The final board's buttons and select: feedback, "we chose…", Details, Re-run, Stress test, Split.

Each element's value names the consultation (`bot.actions` says what each value carries), so a
click acts on this board's consultation and no other.
"""

from __future__ import annotations

from typing import Final

from bot import actions
from bot.blocks.kit import Block, button, static_select
from bot.blocks.kit import actions as actions_block
from bot.board_view import BoardView
from matrec.choices import Mode
from matrec.materials import CLASS_ORDER
from matrec.report import label

CHOOSE_PLACEHOLDER: Final = "We chose…"


def chose_value(consultation_id: str, material: str) -> str:
    """The value of one "we chose…" option: `<consultation id>:<class>`."""
    return f"{consultation_id}:{material}"


def final_controls(view: BoardView, mode: Mode) -> list[Block]:
    """Two rows: the team's feedback, then what to do next; none without a consultation id."""
    cid = view.consultation_id
    if not cid:
        return []
    feedback = actions_block(
        button(":+1: Helpful", actions.HELPFUL, cid),
        button(":-1: Not helpful", actions.NOT_HELPFUL, cid),
        static_select(CHOOSE_PLACEHOLDER, actions.CHOSE, [(label(m), chose_value(cid, m.value)) for m in CLASS_ORDER]),
    )
    next_steps = [button("Details", actions.DETAILS, cid), button("Re-run", actions.RERUN, cid)]
    if mode is not Mode.NESTED:  # a stress test is the nested run; this board already is one
        next_steps.append(button("Stress test", actions.STRESS, cid))
    if view.photos > 1:
        next_steps.append(button("These are different parts", actions.SPLIT, cid))
    return [feedback, actions_block(*next_steps)]
