"""The Store: consultations, their ownership by running instances, dedupe keys, and the conversation
around each (images, follow-up turns, feedback, mutes), with search and statistics, on one engine."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Sequence
from datetime import date, datetime, timedelta
from enum import Enum
from types import TracebackType
from typing import Any, Final, Literal, Self

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store import claude_budget, ledger, search, slack_budget
from bot.store.dedupe import prune_keys, record_keys
from bot.store.engine import Connections, connect
from bot.store.ledger import Reservation
from bot.store.migrate import migrate
from bot.store.model import (
    ACTIVE_STATUSES,
    COLUMNS,
    TURN_COLUMNS,
    Clock,
    Consultation,
    ConsultationStatus,
    Feedback,
    Rating,
    Stats,
    StoredImage,
    Turn,
    apply_changes,
    apply_turn_changes,
    utc_now,
)
from bot.store.stats import summarize, window_start
from bot.store.tables import (
    CONSULTATION_COLUMNS,
    TURN_COLUMNS_IN_ORDER,
    consultation_images,
    consultations,
    feedback,
    mutes,
    turns,
)
from bot.store.urls import parse_database_url
from matrec.budget_buckets import BudgetLimits
from matrec.materials import MaterialClass
from matrec.urls import redact_url

logger = logging.getLogger(__name__)

RECENT_LIMIT = 20  # consultations recent() returns unless told otherwise
TAKE_OVER_LIMIT = 100  # consultations one take_over() claims unless told otherwise
HISTORY_LIMIT = 10  # consultations history() and search() return unless told otherwise
SIMILAR_LIMIT = 3  # consultations similar() returns unless told otherwise
STATS_WEEKS = 8  # weeks stats() covers unless told otherwise
# What the search documents are made of: an update() of one of these rewrites the document.
INDEXED_FIELDS = frozenset({"context", "part_text", "file_name", "files", "recommendation"})


class _Unset(Enum):
    UNSET = "unset"


UNSET: Final = _Unset.UNSET  # set_feedback(): leave this field as it is

_c = consultations.c
_SELECT = sa.select(*CONSULTATION_COLUMNS)
_OLDEST_FIRST = (_c.created_at, _c.seq)
_NEWEST_FIRST = (_c.created_at.desc(), _c.seq.desc())
_ACTIVE = _c.status.in_(ACTIVE_STATUSES)
_t = turns.c
_TURN_SELECT = sa.select(*TURN_COLUMNS_IN_ORDER)
_FEEDBACK_SELECT = sa.select(
    feedback.c.consultation_id, feedback.c.user_id, feedback.c.rating, feedback.c.chosen, feedback.c.updated_at
)
_BEST = sa.type_coerce(_c.recommendation, sa.JSON)["best"].as_string()


class Store:
    """Consultations, their conversations and dedupe keys in SQLite or PostgreSQL; `await Store.open(url)`.

    Every query that serves a person (history, search, similar, stats) takes the channels that
    person may see and returns nothing outside them; no channels, nothing.
    """

    def __init__(self, connections: Connections, clock: Clock) -> None:
        self._connections = connections
        self._clock = clock

    @classmethod
    async def open(cls, url: str, *, clock: Clock = utc_now) -> Self:
        """Connect to DATABASE_URL `url`, create or migrate the schema, and return the store."""
        connections = connect(parse_database_url(url))
        try:
            await migrate(connections)
        except BaseException:
            await connections.close()
            raise
        logger.info("store opened: %s", redact_url(url))
        return cls(connections, clock)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every connection."""
        await self._connections.close()

    async def ping(self) -> None:
        """A trivial query (readiness): raises (a DBAPIError, OSError...) when the database cannot answer."""
        async with self._connections.read() as connection:
            await connection.execute(sa.text("SELECT 1"))

    async def claim_and_add(
        self, *, event_id: str | None, channel: str, ts: str, consultations: Sequence[Consultation]
    ) -> bool:
        """Record the message's dedupe keys and add `consultations`, in one transaction.

        False (and nothing added) if the event or the message was seen before, so of concurrent
        deliveries of one upload exactly one gets True. If an insert fails, the keys are not kept.
        """
        now = self._clock()
        async with self._connections.write() as connection:
            event_is_new, message_is_new = await record_keys(
                connection, event_id=event_id, channel=channel, ts=ts, now=now
            )
            if not (event_is_new and message_is_new):
                return False
            await _insert(connection, consultations, now)
        return True

    async def add(self, consultation: Consultation) -> None:
        """Store a new consultation (one with an owner and no heartbeat_at gets heartbeat_at = now)."""
        async with self._connections.write() as connection:
            await _insert(connection, [consultation], self._clock())

    async def update(self, consultation_id: str, **changes: Any) -> Consultation:
        """Apply `changes`, bump updated_at and return the stored consultation."""
        async with self._connections.write() as connection:
            query = _SELECT.where(_c.id == consultation_id).with_for_update()
            row = (await connection.execute(query)).first()
            if row is None:
                raise KeyError(consultation_id)
            updated = apply_changes(_consultation(row), changes, self._clock())
            values = {name: getattr(updated, name) for name in COLUMNS if name != "id"}
            await connection.execute(sa.update(consultations).where(_c.id == consultation_id).values(values))
            if INDEXED_FIELDS.intersection(changes):
                await search.reindex(connection, [consultation_id])
        return updated

    async def get(self, consultation_id: str) -> Consultation | None:
        """The consultation with this id, if any."""
        found = await self._select(_SELECT.where(_c.id == consultation_id))
        return found[0] if found else None

    async def for_message(self, channel: str, ts: str) -> list[Consultation]:
        """Consultations started by one message, oldest first."""
        return await self._select(_SELECT.where(_c.channel == channel, _c.message_ts == ts).order_by(*_OLDEST_FIRST))

    async def for_thread(self, channel: str, thread_ts: str) -> list[Consultation]:
        """Consultations in one thread, oldest first."""
        query = _SELECT.where(_c.channel == channel, _c.thread_ts == thread_ts).order_by(*_OLDEST_FIRST)
        return await self._select(query)

    async def recent(self, *, channel: str | None = None, limit: int = RECENT_LIMIT) -> list[Consultation]:
        """The latest consultations, newest first, optionally in one channel."""
        query = _SELECT.order_by(*_NEWEST_FIRST).limit(limit)
        return await self._select(query if channel is None else query.where(_c.channel == channel))

    async def heartbeat(self, owner: str) -> int:
        """Mark every active consultation `owner` holds as alive now; return how many."""
        return await self._update_owned(owner, heartbeat_at=self._clock())

    async def release(self, owner: str) -> int:
        """At shutdown: leave `owner`'s active consultations for any instance to take over at once."""
        return await self._update_owned(owner, heartbeat_at=None)

    async def take_over(self, owner: str, *, stale_after_s: float, limit: int = TAKE_OVER_LIMIT) -> list[Consultation]:
        """Take active consultations of other owners silent for `stale_after_s` (or never heard of).

        Each taken one gets owner=`owner`, heartbeat_at=now and one more resume; they come back
        oldest first. Concurrent callers never take the same one: PostgreSQL skips rows another
        transaction has locked, SQLite runs one writer at a time.
        """
        now = self._clock()
        stale = sa.or_(_c.heartbeat_at.is_(None), _c.heartbeat_at <= now - timedelta(seconds=stale_after_s))
        candidates = (
            sa.select(_c.seq)
            .where(_ACTIVE, _c.owner.is_distinct_from(owner), stale)
            .order_by(*_OLDEST_FIRST)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        statement = (
            sa.update(consultations)
            .where(_c.seq.in_(candidates))
            .values(owner=owner, heartbeat_at=now, resumes=_c.resumes + 1)
            .returning(_c.seq, *CONSULTATION_COLUMNS)
        )
        async with self._connections.write() as connection:
            rows = (await connection.execute(statement)).all()
        oldest_first = sorted(rows, key=lambda row: (row.created_at, row.seq))
        return [Consultation.model_validate({name: row._mapping[name] for name in COLUMNS}) for row in oldest_first]

    async def prune_dedupe(self, older_than_s: float) -> int:
        """Forget dedupe keys recorded more than `older_than_s` ago; return how many."""
        cutoff = self._clock() - timedelta(seconds=older_than_s)
        async with self._connections.write() as connection:
            return await prune_keys(connection, seen_before=cutoff)

    async def claim(self, event_id: str | None, channel: str, ts: str) -> bool:
        """Record a message's dedupe keys; False if the event or the message was seen before."""
        return await self.claim_and_add(event_id=event_id, channel=channel, ts=ts, consultations=[])

    async def reserve(
        self, day: date, channel: str, amount_usd: float, *, cap_day: float | None, cap_channel: float | None
    ) -> Reservation | None:
        """Hold `amount_usd` against the day's caps (None: no cap), or None if either would be exceeded.

        Atomic across instances: concurrent reservations never take the day past a cap.
        """
        reservation = Reservation(day, channel, amount_usd)
        async with self._connections.write() as connection:
            held = await ledger.reserve(connection, reservation, cap_day=cap_day, cap_channel=cap_channel)
        return reservation if held else None

    async def settle(self, reservation: Reservation, actual_usd: float) -> None:
        """Replace a reservation by the actual cost."""
        async with self._connections.write() as connection:
            await ledger.settle(connection, reservation, actual_usd)

    async def release_reservation(self, reservation: Reservation) -> None:
        """Drop a reservation that cost nothing."""
        await self.settle(reservation, 0.0)

    async def spent(self, day: date, channel: str | None = None) -> float:
        """Dollars reserved and settled on `day` (a UTC date), team-wide or in one channel."""
        async with self._connections.read() as connection:
            return sum(await ledger.spent(connection, day, ledger.TEAM if channel is None else channel))

    async def claim_spend_alert(self, day: date) -> bool:
        """True for exactly one caller per day, across instances: whoever sends the day's warning."""
        async with self._connections.write() as connection:
            return await ledger.claim_alert(connection, day)

    async def latest_in_thread(self, channel: str, thread_ts: str) -> Consultation | None:
        """The newest consultation of a thread (a re-run's, once there is one), if any."""
        query = _SELECT.where(_c.channel == channel, _c.thread_ts == thread_ts).order_by(*_NEWEST_FIRST).limit(1)
        found = await self._select(query)
        return found[0] if found else None

    async def children(self, consultation_id: str) -> list[Consultation]:
        """The re-runs, stress tests and split-off parts of a consultation, oldest first."""
        return await self._select(_SELECT.where(_c.parent_id == consultation_id).order_by(*_OLDEST_FIRST))

    async def channels(self) -> list[str]:
        """Every channel that has a consultation, sorted."""
        async with self._connections.read() as connection:
            return list((await connection.scalars(sa.select(_c.channel).distinct().order_by(_c.channel))).all())

    async def history(
        self, channels: Collection[str], *, limit: int = HISTORY_LIMIT, user_id: str | None = None
    ) -> list[Consultation]:
        """The latest consultations in `channels` (of `user_id` only, if given), newest first."""
        if not channels:
            return []
        query = _SELECT.where(_c.channel.in_(channels)).order_by(*_NEWEST_FIRST).limit(limit)
        return await self._select(query if user_id is None else query.where(_c.user_id == user_id))

    async def search(self, words: str, channels: Collection[str], *, limit: int = HISTORY_LIMIT) -> list[Consultation]:
        """Consultations in `channels` whose text holds every one of `words`, best match first.

        `words` is user input taken as plain words: punctuation and query operators are ignored.
        """
        return await self._ranked(search.words(words), channels, any_word=False, limit=limit)

    async def similar(
        self, text: str, channels: Collection[str], *, exclude_ids: Collection[str] = (), limit: int = SIMILAR_LIMIT
    ) -> list[Consultation]:
        """Finished consultations in `channels` sharing any word with `text`, most alike first."""
        done = sa.and_(_c.status == ConsultationStatus.DONE, _c.recommendation.is_not(None))
        excluded = _c.id.not_in(exclude_ids) if exclude_ids else sa.true()
        return await self._ranked(
            search.words(text), channels, any_word=True, limit=limit, where=sa.and_(done, excluded)
        )

    async def stats(self, channels: Collection[str], *, weeks: int = STATS_WEEKS) -> Stats:
        """Consultations in `channels` created in the last `weeks` ISO weeks (this one included).

        per_week counts them per week (Monday dates, UTC, zero weeks included); best counts
        their recommendations' best classes; chosen counts each person's latest choice;
        with_choice counts consultations with a choice, agreed those where no class was chosen
        more often than the recommended best.
        """
        start = window_start(self._clock(), weeks)
        if not channels:
            return summarize(start, weeks, [], [])
        in_window = sa.and_(_c.channel.in_(channels), _c.created_at >= start)
        created_query = sa.select(_c.id, _c.created_at, _BEST).where(in_window)
        choices_query = (
            sa.select(feedback.c.consultation_id, feedback.c.chosen)
            .join(consultations, _c.id == feedback.c.consultation_id)
            .where(in_window, feedback.c.chosen.is_not(None))
        )
        async with self._connections.read() as connection:
            created = (await connection.execute(created_query)).all()
            choices = (await connection.execute(choices_query)).all()
        return summarize(
            start,
            weeks,
            ((row.id, row.created_at, MaterialClass(row[2]) if row[2] else None) for row in created),
            ((row.consultation_id, row.chosen) for row in choices),
        )

    async def save_images(self, consultation_id: str, images: Sequence[StoredImage]) -> None:
        """Store a consultation's prepared images, replacing every image it had.

        KeyError if the consultation is unknown; ValueError if two images share a position.
        """
        rows = [{"consultation_id": consultation_id, **image.model_dump()} for image in images]
        if len({image.position for image in images}) < len(images):
            raise ValueError(f"images of {consultation_id} share a position: {[i.position for i in images]}")
        async with self._connections.write() as connection:
            await self._lock_consultation(connection, consultation_id)
            await connection.execute(
                sa.delete(consultation_images).where(consultation_images.c.consultation_id == consultation_id)
            )
            if rows:
                await connection.execute(sa.insert(consultation_images), rows)

    async def images(self, consultation_id: str) -> list[StoredImage]:
        """A consultation's prepared images, by position."""
        columns = [consultation_images.c[name] for name in StoredImage.model_fields]
        query = (
            sa.select(*columns)
            .where(consultation_images.c.consultation_id == consultation_id)
            .order_by(consultation_images.c.position)
        )
        async with self._connections.read() as connection:
            rows = (await connection.execute(query)).all()
        return [StoredImage.model_validate(dict(row._mapping)) for row in rows]

    async def add_turn(self, turn: Turn) -> None:
        """Store a new follow-up turn; ValueError if its id is already stored."""
        try:
            async with self._connections.write() as connection:
                await connection.execute(sa.insert(turns), [{name: getattr(turn, name) for name in TURN_COLUMNS}])
        except sa.exc.IntegrityError as error:
            raise ValueError(f"turn {turn.id} is already stored or its consultation is not") from error

    async def update_turn(self, turn_id: str, **changes: Any) -> Turn:
        """Apply `changes` (answer, status, changes, answer_ts...), bump updated_at, return the turn."""
        async with self._connections.write() as connection:
            row = (await connection.execute(_TURN_SELECT.where(_t.id == turn_id).with_for_update())).first()
            if row is None:
                raise KeyError(turn_id)
            updated = apply_turn_changes(Turn.model_validate(dict(row._mapping)), changes, self._clock())
            values = {name: getattr(updated, name) for name in TURN_COLUMNS if name != "id"}
            await connection.execute(sa.update(turns).where(_t.id == turn_id).values(values))
        return updated

    async def get_turn(self, turn_id: str) -> Turn | None:
        """The turn with this id, if any."""
        found = await self._select_turns(_TURN_SELECT.where(_t.id == turn_id))
        return found[0] if found else None

    async def turns(self, consultation_id: str) -> list[Turn]:
        """A consultation's follow-up turns, oldest first."""
        query = _TURN_SELECT.where(_t.consultation_id == consultation_id).order_by(_t.created_at, _t.seq)
        return await self._select_turns(query)

    async def set_feedback(
        self,
        consultation_id: str,
        user_id: str,
        *,
        rating: Rating | Literal[_Unset.UNSET] | None = UNSET,
        chosen: MaterialClass | Literal[_Unset.UNSET] | None = UNSET,
    ) -> Feedback:
        """Record one person's rating and/or choice; an argument left out keeps its stored value.

        KeyError if the consultation is unknown. A choice re-indexes the consultation for search.
        """
        now = self._clock()
        given = {name: value for name, value in (("rating", rating), ("chosen", chosen)) if value is not UNSET}
        new = Feedback.model_validate(
            {"consultation_id": consultation_id, "user_id": user_id, **given, "updated_at": now}
        )
        values = new.model_dump()
        async with self._connections.write() as connection:
            # The consultation's row lock orders concurrent feedback, so each re-index sees the others'.
            await self._lock_consultation(connection, consultation_id)
            insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
            statement = (
                insert(feedback)
                .values(values)
                .on_conflict_do_update(
                    index_elements=[feedback.c.consultation_id, feedback.c.user_id],
                    set_={name: values[name] for name in (*given, "updated_at")},
                )
                .returning(*_FEEDBACK_SELECT.selected_columns)
            )
            row = (await connection.execute(statement)).one()
            if "chosen" in given:
                await search.reindex(connection, [consultation_id])
        return Feedback.model_validate(dict(row._mapping))

    async def feedback(self, consultation_id: str) -> list[Feedback]:
        """Everyone's feedback on a consultation, in the order it was last changed."""
        query = _FEEDBACK_SELECT.where(feedback.c.consultation_id == consultation_id).order_by(
            feedback.c.updated_at, feedback.c.user_id
        )
        async with self._connections.read() as connection:
            rows = (await connection.execute(query)).all()
        return [Feedback.model_validate(dict(row._mapping)) for row in rows]

    async def choices(self, consultation_id: str) -> dict[MaterialClass, int]:
        """How many people chose each class for a consultation (each person's latest choice)."""
        return dict(Counter(f.chosen for f in await self.feedback(consultation_id) if f.chosen is not None))

    async def mute(self, channel: str, thread_ts: str, user_id: str | None) -> None:
        """Stop the bot answering follow-ups in this thread (`user_id` is who asked)."""
        values = {"channel": channel, "thread_ts": thread_ts, "user_id": user_id, "muted_at": self._clock()}
        async with self._connections.write() as connection:
            insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
            statement = insert(mutes).values(values)
            await connection.execute(
                statement.on_conflict_do_update(
                    index_elements=[mutes.c.channel, mutes.c.thread_ts],
                    set_={"user_id": statement.excluded.user_id, "muted_at": statement.excluded.muted_at},
                )
            )

    async def unmute(self, channel: str, thread_ts: str) -> None:
        """Let the bot answer follow-ups in this thread again."""
        async with self._connections.write() as connection:
            await connection.execute(sa.delete(mutes).where(mutes.c.channel == channel, mutes.c.thread_ts == thread_ts))

    async def muted(self, channel: str, thread_ts: str) -> bool:
        """Whether someone muted the bot in this thread."""
        query = sa.select(mutes.c.channel).where(mutes.c.channel == channel, mutes.c.thread_ts == thread_ts)
        async with self._connections.read() as connection:
            return (await connection.execute(query)).first() is not None

    async def _ranked(
        self,
        query_words: Sequence[str],
        channels: Collection[str],
        *,
        any_word: bool,
        limit: int,
        where: sa.ColumnElement[bool] | None = None,
    ) -> list[Consultation]:
        if not query_words or not channels:
            return []
        async with self._connections.read() as connection:
            matches = search.ranked(connection.dialect.name, query_words, any_word=any_word)
            query = (
                _SELECT.select_from(consultations.join(matches, matches.c.seq == _c.seq))
                .where(_c.channel.in_(channels), sa.true() if where is None else where)
                .order_by(matches.c.rank, *_NEWEST_FIRST)
                .limit(limit)
            )
            rows = (await connection.execute(query)).all()
        return [_consultation(row) for row in rows]

    @staticmethod
    async def _lock_consultation(connection: AsyncConnection, consultation_id: str) -> None:
        """Lock the consultation's row for this transaction (PostgreSQL); KeyError if there is none."""
        locked = sa.select(_c.id).where(_c.id == consultation_id).with_for_update()
        if (await connection.execute(locked)).first() is None:
            raise KeyError(consultation_id)

    async def _select_turns(self, query: sa.Select[Any]) -> list[Turn]:
        async with self._connections.read() as connection:
            rows = (await connection.execute(query)).all()
        return [Turn.model_validate(dict(row._mapping)) for row in rows]

    async def _select(self, query: sa.Select[Any]) -> list[Consultation]:
        async with self._connections.read() as connection:
            rows = (await connection.execute(query)).all()
        return [_consultation(row) for row in rows]

    async def _update_owned(self, owner: str, *, heartbeat_at: datetime | None) -> int:
        statement = sa.update(consultations).where(_c.owner == owner, _ACTIVE).values(heartbeat_at=heartbeat_at)
        async with self._connections.write() as connection:
            return (await connection.execute(statement)).rowcount

    # CLAUDE-BUDGET (issue 9 item 2): the shared Claude budget's one transaction (bot.store.claude_budget).
    async def claude_budget_step(
        self, change: claude_budget.Step, limits: BudgetLimits, now: float
    ) -> claude_budget.Outcome:
        """Record what an instance saw of its Claude calls and grant waiting ones, atomically across instances."""
        async with self._connections.write() as connection:
            return await claude_budget.step(connection, change, limits, now)

    # --- SLACK-BUDGET: the shared Slack budget (bot.store.slack_budget) ---------------------------

    async def take_slack(
        self, bucket: str, rate: slack_budget.BucketRate, *, now_s: float, floor: float, cost: float = 1.0
    ) -> float:
        """Spend from a shared Slack bucket: 0.0 if granted, else seconds until it could be (see the module)."""
        async with self._connections.write() as connection:
            return await slack_budget.take(connection, bucket, rate, now_s=now_s, floor=floor, cost=cost)

    async def prune_slack_budget(self, *, before_s: float) -> int:
        """Forget Slack buckets untouched since `before_s`."""
        async with self._connections.write() as connection:
            return await slack_budget.prune(connection, before_s=before_s)

    async def add_pointer(self, pointer: slack_budget.Pointer, *, now_s: float) -> None:
        """Record a board to be turned into a pointer to its final state's new message."""
        async with self._connections.write() as connection:
            await slack_budget.add_pointer(connection, pointer, now_s=now_s)

    async def lease_pointers(self, *, now_s: float, lease_s: float, limit: int) -> list[slack_budget.Pointer]:
        """Pointers nobody holds, held by the caller for `lease_s`."""
        async with self._connections.write() as connection:
            return await slack_budget.lease_pointers(connection, now_s=now_s, lease_s=lease_s, limit=limit)

    async def drop_pointer(self, pointer: slack_budget.Pointer) -> None:
        """Forget a pointer that landed."""
        async with self._connections.write() as connection:
            await slack_budget.drop_pointer(connection, pointer)

    async def pending_pointers(self) -> list[slack_budget.Pointer]:
        """Every pointer not landed yet."""
        async with self._connections.read() as connection:
            return await slack_budget.pending_pointers(connection)


def _consultation(row: sa.Row[Any]) -> Consultation:
    return Consultation.model_validate(dict(row._mapping))


async def _insert(connection: AsyncConnection, added: Sequence[Consultation], now: datetime) -> None:
    """Insert `added`; ValueError (rolling the transaction back) if one's id is already stored."""
    if not added:
        return
    rows = [_row(consultation, now) for consultation in added]
    try:
        await connection.execute(sa.insert(consultations), rows)
    except sa.exc.IntegrityError as error:
        ids = ", ".join(consultation.id for consultation in added)
        raise ValueError(f"consultation {ids} is already stored") from error
    await search.reindex(connection, [consultation.id for consultation in added])


def _row(consultation: Consultation, now: datetime) -> dict[str, Any]:
    row = {name: getattr(consultation, name) for name in COLUMNS}
    if consultation.owner is not None and consultation.heartbeat_at is None:
        # Otherwise another instance would see it as stale before its owner's first heartbeat.
        row["heartbeat_at"] = now
    return row
