"""The numbers behind the team's statistics: consultations per ISO week, classes recommended and chosen."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

from bot.store.model import Stats
from matrec.materials import MaterialClass

DAYS_PER_WEEK = 7


def window_start(now: datetime, weeks: int) -> datetime:
    """Monday 00:00 UTC of the first of the `weeks` ISO weeks that end with this one."""
    if weeks < 1:
        raise ValueError(f"stats need at least one week, not {weeks}")
    return datetime.combine(_monday(now) - timedelta(weeks=weeks - 1), time(), tzinfo=UTC)


def summarize(
    start: datetime,
    weeks: int,
    created: Iterable[tuple[str, datetime, MaterialClass | None]],
    choices: Iterable[tuple[str, MaterialClass]],
) -> Stats:
    """Stats of consultations (id, created_at, best) since `start` and their choices (id, class).

    `choices` holds each person's latest choice per consultation (the feedback table keeps only
    that). A consultation agrees when no class was chosen more often than its recommended best.
    """
    per_week = Counter[date]()
    best_of: dict[str, MaterialClass | None] = {}
    for consultation_id, created_at, best in created:
        per_week[_monday(created_at)] += 1
        best_of[consultation_id] = best
    counted: defaultdict[str, Counter[MaterialClass]] = defaultdict(Counter)
    for consultation_id, chosen in choices:
        counted[consultation_id][chosen] += 1
    mondays = [start.date() + timedelta(weeks=n) for n in range(weeks)]
    agreed = sum(
        1
        for consultation_id, votes in counted.items()
        if (best := best_of.get(consultation_id)) is not None and votes[best] == max(votes.values())
    )
    return Stats(
        total=len(best_of),
        per_week=[(monday, per_week[monday]) for monday in mondays],
        best=dict(Counter(best for best in best_of.values() if best is not None)),
        chosen=dict(sum(counted.values(), Counter[MaterialClass]())),
        with_choice=len(counted),
        agreed=agreed,
    )


def _monday(moment: datetime) -> date:
    day = moment.astimezone(UTC).date()
    return day - timedelta(days=day.weekday())
