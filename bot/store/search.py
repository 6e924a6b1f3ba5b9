"""The full-text index: one document per consultation, written by the store, queried by words.

A consultation's document holds what people search for: its context, part description and file
names, the recommendation's part, best and runner-up classes and rationale, and the classes the
team chose. Documents and queries both pass through `words`, so both databases see plain words
and no query syntax ever reaches them from user input:

    SQLite       FTS5 (porter over unicode61); each word is a quoted string, AND or OR of them;
                 ranked by bm25()
    PostgreSQL   a generated tsvector ('english'); plainto_tsquery per word, && or || of them;
                 ranked by ts_rank()
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.model import Consultation
from bot.store.tables import CONSULTATION_COLUMNS, consultations, feedback

MAX_QUERY_WORDS = 32  # words of one query; the rest are ignored
REINDEX_BATCH_ROWS = 500  # consultations one statement re-indexes when filling in missing documents
SEARCH_TABLE = "consultation_search"
_WORD = re.compile(r"[^\W_]+")
# Words that say nothing about a part: PostgreSQL's 'english' stop words (Snowball's list), so that
# both databases ignore the same ones.
_STOP_WORDS = frozenset(
    (  # noqa: SIM905 (a list literal of 127 strings reads worse)
        "i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she her "
        "hers herself it its itself they them their theirs themselves what which who whom this that these "
        "those am is are was were be been being have has had having do does did doing a an the and but if or "
        "because as until while of at by for with about against between into through during before after "
        "above below to from up down in out on off over under again further then once here there when where "
        "why how all any both each few more most other some such no nor not only own same so than too very s "
        "t can will just don should now "
    ).split()
)
_POSTGRES_CONFIG: sa.ColumnClause[Any] = sa.literal_column("'english'::regconfig")
_sqlite_index = sa.table(SEARCH_TABLE, sa.column("rowid", sa.Integer), sa.column("body", sa.Text))
_postgres_index = sa.table(
    SEARCH_TABLE,
    sa.column("seq", sa.BigInteger),
    sa.column("body", sa.Text),
    sa.column("document", postgresql.TSVECTOR),
)


def words(text: str) -> list[str]:
    """The distinct searchable words of `text`, lower-cased, in order, without stop words."""
    found = dict.fromkeys(word for word in _WORD.findall(text.lower()) if word not in _STOP_WORDS)
    return list(found)[:MAX_QUERY_WORDS]


def document(consultation: Consultation, chosen: Iterable[str]) -> str:
    """The text the index holds for `consultation`, given the classes its team chose."""
    parts = [consultation.context, consultation.part_text, consultation.file_name or ""]
    parts += [file.name for file in consultation.files]
    rec = consultation.recommendation
    if rec is not None:
        parts += [rec.part, rec.best.value, rec.runner_up.value if rec.runner_up else "", rec.rationale]
    parts += sorted(chosen)
    return " ".join(_WORD.findall(" ".join(parts)))


def ranked(dialect: str, query_words: Collection[str], *, any_word: bool) -> sa.Subquery:
    """(seq, rank) of the consultations whose documents match; lower rank is a better match."""
    if dialect == "postgresql":
        queries: list[sa.ColumnElement[Any]] = [sa.func.plainto_tsquery(_POSTGRES_CONFIG, w) for w in query_words]
        query = queries[0]
        for more in queries[1:]:
            query = query.op("||" if any_word else "&&")(more)
        document_ = _postgres_index.c.document
        rank = -sa.func.ts_rank(document_, query)
        return sa.select(_postgres_index.c.seq, rank.label("rank")).where(document_.op("@@")(query)).subquery()
    match = (" OR " if any_word else " ").join(f'"{word}"' for word in query_words)
    table: sa.ColumnClause[Any] = sa.literal_column(SEARCH_TABLE)
    seq = _sqlite_index.c.rowid.label("seq")
    return sa.select(seq, sa.func.bm25(table).label("rank")).where(table.match(match)).subquery()


async def reindex(connection: AsyncConnection, consultation_ids: Collection[str]) -> None:
    """Rewrite the documents of these consultations (in the caller's transaction)."""
    if not consultation_ids:
        return
    query = sa.select(consultations.c.seq, *CONSULTATION_COLUMNS).where(consultations.c.id.in_(consultation_ids))
    await _write(connection, (await connection.execute(query)).all(), replace=True)


async def fill_missing(connection: AsyncConnection) -> int:
    """Write the documents of consultations that have none (rows from before the index); how many.

    Runs under the migration lock (see bot.store.migrate), so instances starting at once never
    write the same document twice.
    """
    key = _key(connection.dialect.name)
    written = 0
    while True:
        query = (
            sa.select(consultations.c.seq, *CONSULTATION_COLUMNS)
            .where(consultations.c.seq.not_in(sa.select(key)))
            .order_by(consultations.c.seq)
            .limit(REINDEX_BATCH_ROWS)
        )
        rows = (await connection.execute(query)).all()
        if not rows:
            return written
        await _write(connection, rows, replace=False)
        written += len(rows)


async def _write(connection: AsyncConnection, rows: Collection[sa.Row[Any]], *, replace: bool) -> None:
    dialect = connection.dialect.name
    index = _postgres_index if dialect == "postgresql" else _sqlite_index
    key = _key(dialect)
    ids = [row.id for row in rows]
    chosen_query = (
        sa.select(feedback.c.consultation_id, feedback.c.chosen)
        .distinct()
        .where(feedback.c.consultation_id.in_(ids), feedback.c.chosen.is_not(None))
    )
    chosen: dict[str, list[str]] = {}
    for consultation_id, material in await connection.execute(chosen_query):
        chosen.setdefault(consultation_id, []).append(material.value)
    documents = [{key.name: row.seq, "body": document(_consultation(row), chosen.get(row.id, []))} for row in rows]
    if replace:
        await connection.execute(sa.delete(index).where(key.in_([row.seq for row in rows])))
    await connection.execute(sa.insert(index), documents)


def _key(dialect: str) -> sa.ColumnClause[Any]:
    return _postgres_index.c.seq if dialect == "postgresql" else _sqlite_index.c.rowid


def _consultation(row: sa.Row[Any]) -> Consultation:
    mapping = dict(row._mapping)
    mapping.pop("seq")
    return Consultation.model_validate(mapping)
