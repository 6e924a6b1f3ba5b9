"""The team's memory, on both backends: history, full-text search, similar consultations, channels and stats."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from bot.store import Consultation, ConsultationStatus, Stats, Store, StoredFile
from tests.store_support import (  # noqa: F401 (pytest fixtures)
    FakeClock,
    M,
    clock_fixture,
    consultation,
    recommendation,
    store_fixture,
    url_fixture,
)

S = ConsultationStatus
# Queries that are operators, quotes or broken syntax in FTS5 or tsquery: plain words or nothing here.
HOSTILE_QUERIES = ('a" OR x', "*", "NEAR(", '"', "'", "''", "(", ")", "-", ":", "^", "&|!", "' OR 1=1 --", "\\")


def _done(clock: FakeClock, ts: str, context: str, **fields: Any) -> Consultation:
    rec = recommendation().model_copy(update={"part": "", "rationale": "", **fields.pop("rec", {})})
    return consultation(clock, ts=ts, context=context, status=S.DONE, recommendation=rec, **fields)


async def _add(store: Store, *added: Consultation) -> None:
    for c in added:
        await store.add(c)


async def _ids(found: list[Consultation]) -> list[str]:
    return [c.id for c in found]


async def test_history_is_newest_first_limited_to_the_channels_and_optionally_one_person(
    store: Store, clock: FakeClock
) -> None:
    first = consultation(clock, ts="100.1")
    clock.advance(1)
    second = consultation(clock, ts="100.2", user_id="U2")
    clock.advance(1)
    third = consultation(clock, ts="100.3")
    private = consultation(clock, channel="G9", ts="100.4")
    await _add(store, first, second, third, private)

    assert await _ids(await store.history(["C1"])) == [third.id, second.id, first.id]
    assert await _ids(await store.history(["C1", "G9"], limit=2)) == [private.id, third.id]
    assert await _ids(await store.history({"C1"}, user_id="U1")) == [third.id, first.id]
    assert await store.history([]) == []
    assert await store.channels() == ["C1", "G9"]


async def test_search_finds_every_indexed_part_of_a_consultation(store: Store, clock: FakeClock) -> None:
    rec = {"part": "hinge", "best": M.COMPOSITE, "runner_up": M.ELASTOMER, "rationale": "Stiffness per weight wins."}
    found = _done(clock, "100.1", "outdoor, 5 kg", rec=rec, files=[StoredFile(id="F1", name="drone_arm-v2.jpg")])
    await _add(store, found, consultation(clock, ts="200.1", context="indoor shelf"))
    await store.update(found.id, part_text="carbon drone arm")

    for words in ("outdoor", "hinge", "composite", "elastomer", "stiffness weights", "carbon", "drone arm", "v2 JPG"):
        assert await _ids(await store.search(words, ["C1"])) == [found.id], words
    assert await store.search("outdoor shelf", ["C1"]) == []  # every word must match


async def test_search_ranks_the_better_match_first(store: Store, clock: FakeClock) -> None:
    weak = consultation(clock, ts="100.1", context="bracket with a long description of many other unrelated words")
    clock.advance(1)
    strong = consultation(clock, ts="100.2", context="bracket bracket")
    clock.advance(1)
    newer_weak = consultation(clock, ts="100.3", context="bracket and lots of further text about the shelf it holds")
    await _add(store, weak, strong, newer_weak, consultation(clock, ts="100.4", context="shelf"))

    results = await _ids(await store.search("Brackets", ["C1"]))

    assert results[0] == strong.id
    assert set(results) == {weak.id, strong.id, newer_weak.id}
    assert len(await store.search("bracket", ["C1"], limit=2)) == 2


async def test_search_only_sees_the_given_channels(store: Store, clock: FakeClock) -> None:
    public = consultation(clock, ts="100.1", context="gear housing")
    private = consultation(clock, channel="G2", ts="100.2", context="gear housing")
    dm = consultation(clock, channel="D3", ts="100.3", context="gear housing")
    await _add(store, public, private, dm)

    assert await _ids(await store.search("gear", ["C1"])) == [public.id]
    assert set(await _ids(await store.search("gear", ["C1", "D3"]))) == {public.id, dm.id}
    assert await store.search("gear", []) == []
    assert await store.search("gear", ["C9"]) == []


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
async def test_search_input_is_never_query_syntax(store: Store, clock: FakeClock, query: str) -> None:
    await _add(store, consultation(clock, context='the "x" bracket (NEAR a star *) OR 1=1'))

    assert await store.search(query, ["C1"]) in ([], await store.search("x", ["C1"]))
    assert await store.similar(query, ["C1"]) == []


async def test_operators_in_search_words_are_plain_words(store: Store, clock: FakeClock) -> None:
    bracket = consultation(clock, ts="100.1", context="bracket")
    shelf = consultation(clock, ts="100.2", context="shelf or bracket near the door")
    await _add(store, bracket, shelf)

    assert await _ids(await store.search('bracket" OR "shelf', ["C1"])) == [shelf.id]
    assert await _ids(await store.search("NEAR(bracket door)", ["C1"])) == [shelf.id]
    assert set(await _ids(await store.search('"bracket*', ["C1"]))) == {bracket.id, shelf.id}
    assert await _ids(await store.search("bracket -door", ["C1"])) == [shelf.id]  # no NOT operator either
    assert await store.search("the and of", ["C1"]) == []  # only stop words: nothing to look for


async def test_the_teams_choice_is_searchable_and_follows_a_change_of_mind(store: Store, clock: FakeClock) -> None:
    chosen = _done(clock, "100.1", "outdoor")
    await _add(store, chosen)
    assert await store.search("wood", ["C1"]) == []

    await store.set_feedback(chosen.id, "U1", chosen=M.WOOD)
    assert await _ids(await store.search("wood", ["C1"])) == [chosen.id]
    await store.set_feedback(chosen.id, "U1", chosen=M.CERAMIC)
    assert await store.search("wood", ["C1"]) == []
    assert await _ids(await store.search("ceramic", ["C1"])) == [chosen.id]
    await store.set_feedback(chosen.id, "U1", rating="helpful")
    assert await _ids(await store.search("ceramic", ["C1"])) == [chosen.id]


async def test_an_updated_context_replaces_the_old_words(store: Store, clock: FakeClock) -> None:
    changed = consultation(clock, context="valve body")
    await _add(store, changed)
    await store.update(changed.id, context="pump impeller", status=S.RUNNING)

    assert await store.search("valve", ["C1"]) == []
    assert await _ids(await store.search("impeller", ["C1"])) == [changed.id]


async def test_similar_finds_finished_consultations_sharing_any_word(store: Store, clock: FakeClock) -> None:
    both_words = _done(clock, "100.1", "outdoor bracket")
    one_word = _done(clock, "100.2", "bracket for a shelf")
    unrelated = _done(clock, "100.3", "gear housing")
    running = consultation(clock, ts="100.4", context="outdoor bracket", status=S.RUNNING)
    failed = consultation(clock, ts="100.5", context="outdoor bracket", status=S.FAILED)
    elsewhere = _done(clock, "100.6", "outdoor bracket", channel="G2")
    current = _done(clock, "100.7", "outdoor bracket")
    await _add(store, both_words, one_word, unrelated, running, failed, elsewhere, current)

    found = await _ids(await store.similar("An outdoor bracket, 5 kg", ["C1"], exclude_ids=[current.id]))

    assert found == [both_words.id, one_word.id]
    assert await _ids(await store.similar("outdoor bracket", ["C1"], exclude_ids={current.id}, limit=1)) == [
        both_words.id
    ]
    assert await store.similar("outdoor bracket", []) == []
    assert await store.similar("", ["C1"]) == []


async def test_stats_count_the_weeks_classes_and_choices(store: Store, clock: FakeClock) -> None:
    # The clock is Wednesday 2030-01-02: three weeks are those of Mondays Dec 17, Dec 24 and Dec 30.
    def at(day: datetime) -> dict[str, Any]:
        return {"created_at": day, "updated_at": day}

    too_old = _done(clock, "1.0", "x", **at(datetime(2029, 12, 16, 23, 59, tzinfo=UTC)))
    first_day = _done(clock, "2.0", "x", **at(datetime(2029, 12, 17, tzinfo=UTC)))
    disagreed = _done(clock, "3.0", "x", rec={"best": M.METAL}, **at(datetime(2029, 12, 26, tzinfo=UTC)))
    agreed = _done(clock, "4.0", "x", rec={"best": M.POLYMER}, **at(datetime(2030, 1, 1, tzinfo=UTC)))
    tied = _done(clock, "5.0", "x", rec={"best": M.METAL}, **at(datetime(2030, 1, 2, tzinfo=UTC)))
    running = consultation(clock, ts="6.0", status=S.RUNNING)
    other_channel = _done(clock, "7.0", "x", channel="G2")
    await _add(store, too_old, first_day, disagreed, agreed, tied, running, other_channel)
    choices = [
        (disagreed, "U1", M.METAL),
        (disagreed, "U1", M.POLYMER),  # changed: only the latest counts
        (disagreed, "U2", M.POLYMER),
        (disagreed, "U3", M.METAL),
        (agreed, "U1", M.POLYMER),
        (tied, "U1", M.METAL),
        (tied, "U2", M.WOOD),
        (too_old, "U1", M.WOOD),
        (other_channel, "U1", M.WOOD),
    ]
    for chosen, user, material in choices:
        await store.set_feedback(chosen.id, user, chosen=material)

    stats = await store.stats(["C1"], weeks=3)

    assert stats == Stats(
        total=5,
        per_week=[(date(2029, 12, 17), 1), (date(2029, 12, 24), 1), (date(2029, 12, 31), 3)],
        best={M.METAL: 3, M.POLYMER: 1},
        chosen={M.POLYMER: 3, M.METAL: 2, M.WOOD: 1},
        with_choice=3,
        agreed=2,  # `agreed`, and `tied` where metal has as many votes as any class
    )
    assert (await store.stats(["C1", "G2"], weeks=3)).total == 6


async def test_stats_of_no_channels_are_empty_weeks(store: Store, clock: FakeClock) -> None:
    await _add(store, _done(clock, "1.0", "x"))

    stats = await store.stats([], weeks=2)

    assert stats == Stats(
        total=0,
        per_week=[(date(2029, 12, 24), 0), (date(2029, 12, 31), 0)],
        best={},
        chosen={},
        with_choice=0,
        agreed=0,
    )
    assert len((await store.stats(["C1"])).per_week) == 8
    with pytest.raises(ValueError, match="at least one week"):
        await store.stats(["C1"], weeks=0)
