"""The conversation around a consultation, on both backends: kinds and parents, images, turns, feedback, mutes."""

from __future__ import annotations

import asyncio
import hashlib
import os
from datetime import timedelta

import pytest

from bot.store import (
    TURN_UPDATABLE_FIELDS,
    Consultation,
    ConsultationKind,
    ConsultationStatus,
    Feedback,
    Store,
    StoredFile,
    StoredImage,
    Turn,
    TurnStatus,
)
from tests.store_support import (  # noqa: F401 (pytest fixtures)
    START,
    FakeClock,
    M,
    Opener,
    clock_fixture,
    consultation,
    opener_fixture,
    recommendation,
    store_fixture,
    url_fixture,
)

IMAGE_BYTES = 300_000  # about a prepared photo's size


def _image(position: int, data: bytes) -> StoredImage:
    return StoredImage(
        position=position,
        media_type="image/jpeg",
        data=data,
        width=1568,
        height=1176,
        original_width=4032,
        original_height=3024,
        original_format="JPEG",
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _turn(parent: Consultation, clock: FakeClock, ts: str, question: str = "What about at 150 °C?") -> Turn:
    return Turn(
        consultation_id=parent.id,
        channel=parent.channel,
        thread_ts=parent.thread_ts,
        message_ts=ts,
        user_id="U2",
        question=question,
        created_at=clock(),
        updated_at=clock(),
    )


async def test_the_new_consultation_fields_round_trip_and_update(store: Store, clock: FakeClock) -> None:
    parent = consultation(clock, files=[StoredFile(id="F1", name="a.jpg"), StoredFile(id="F2", name="b.jpg")])
    child = consultation(
        clock,
        ts="100.1:rerun:1",
        thread_ts="100.1",
        kind=ConsultationKind.RERUN,
        parent_id=parent.id,
        requirements=["operates at 250 °C"],
        channel_type="mpim",
    )
    await store.add(parent)
    await store.add(child)

    assert await store.get(parent.id) == parent
    assert await store.get(child.id) == child
    updated = await store.update(child.id, part_text="steel bracket", kind="stress", requirements=["food contact"])
    assert (updated.kind, updated.requirements, updated.part_text) == (
        ConsultationKind.STRESS,
        ["food contact"],
        "steel bracket",
    )
    assert await store.get(child.id) == updated
    assert Consultation(channel="C1", thread_ts="1.0", message_ts="1.0").kind is ConsultationKind.UPLOAD


async def test_claim_records_the_keys_once(store: Store) -> None:
    assert await store.claim("Ev1", "C1", "100.1")
    assert not await store.claim("Ev1", "C1", "100.2")
    assert not await store.claim("Ev2", "C1", "100.1")
    assert await store.claim(None, "C1", "100.3")
    assert await store.recent() == []


async def test_latest_in_thread_and_children_follow_the_re_runs(store: Store, clock: FakeClock) -> None:
    upload = consultation(clock, ts="100.1")
    clock.advance(1)
    rerun = consultation(clock, ts="100.1:rerun:1", thread_ts="100.1", kind="rerun", parent_id=upload.id)
    clock.advance(1)
    stress = consultation(clock, ts="100.1:rerun:2", thread_ts="100.1", kind="stress", parent_id=upload.id)
    other_thread = consultation(clock, ts="200.1")
    for c in (upload, rerun, stress, other_thread):
        await store.add(c)

    assert await store.latest_in_thread("C1", "100.1") == stress
    assert await store.latest_in_thread("C2", "100.1") is None
    assert [c.id for c in await store.children(upload.id)] == [rerun.id, stress.id]
    assert await store.children(rerun.id) == []


async def test_images_round_trip_byte_identical_in_position_order(store: Store, clock: FakeClock) -> None:
    parent = consultation(clock)
    await store.add(parent)
    photos = [_image(position, os.urandom(IMAGE_BYTES) + b"\x00" * 16) for position in (2, 0, 1)]

    await store.save_images(parent.id, photos)

    loaded = await store.images(parent.id)
    assert [image.position for image in loaded] == [0, 1, 2]
    assert loaded == sorted(photos, key=lambda image: image.position)
    assert all(hashlib.sha256(image.data).hexdigest() == image.sha256 for image in loaded)
    assert await store.images("other") == []


async def test_saving_images_replaces_the_earlier_ones(store: Store, clock: FakeClock) -> None:
    parent = consultation(clock)
    await store.add(parent)
    await store.save_images(parent.id, [_image(0, b"first"), _image(1, b"second")])

    await store.save_images(parent.id, [_image(0, b"again")])
    assert [image.data for image in await store.images(parent.id)] == [b"again"]
    await store.save_images(parent.id, [])
    assert await store.images(parent.id) == []


async def test_images_of_an_unknown_consultation_or_sharing_a_position_are_refused(
    store: Store, clock: FakeClock
) -> None:
    parent = consultation(clock)
    await store.add(parent)
    await store.save_images(parent.id, [_image(0, b"kept")])

    with pytest.raises(KeyError):
        await store.save_images("nope", [_image(0, b"x")])
    with pytest.raises(ValueError, match="position"):
        await store.save_images(parent.id, [_image(0, b"x"), _image(0, b"y")])
    assert [image.data for image in await store.images(parent.id)] == [b"kept"]


async def test_a_turn_round_trips_and_updates_bump_its_time(store: Store, clock: FakeClock) -> None:
    parent = consultation(clock)
    await store.add(parent)
    turn = _turn(parent, clock, "100.5")
    await store.add_turn(turn)
    assert await store.get_turn(turn.id) == turn
    clock.advance(4)

    answered = await store.update_turn(
        turn.id,
        answer="Polymer softens at 150 °C.",
        status="answered",
        changes=["operates at 150 °C"],
        answer_ts="100.6",
    )

    assert answered.status is TurnStatus.ANSWERED
    assert (answered.answer_ts, answered.changes) == ("100.6", ["operates at 150 °C"])
    assert (answered.created_at, answered.updated_at) == (START, START + timedelta(seconds=4))
    assert await store.get_turn(turn.id) == answered
    assert await store.get_turn("nope") is None


async def test_turns_come_oldest_first_per_consultation(store: Store, clock: FakeClock) -> None:
    parent, other = consultation(clock), consultation(clock, ts="200.1")
    await store.add(parent)
    await store.add(other)
    first = _turn(parent, clock, "100.5", "first")
    same_instant = _turn(parent, clock, "100.6", "second")
    clock.advance(1)
    later = _turn(parent, clock, "100.7", "third")
    for turn in (first, same_instant, _turn(other, clock, "200.5"), later):
        await store.add_turn(turn)

    assert [t.question for t in await store.turns(parent.id)] == ["first", "second", "third"]
    assert await store.turns("nope") == []


async def test_turn_mistakes_are_refused(store: Store, clock: FakeClock) -> None:
    parent = consultation(clock)
    await store.add(parent)
    turn = _turn(parent, clock, "100.5")
    await store.add_turn(turn)

    with pytest.raises(ValueError, match="already stored"):
        await store.add_turn(turn)
    with pytest.raises(ValueError, match="not"):
        await store.add_turn(turn.model_copy(update={"id": "fresh", "consultation_id": "missing"}))
    with pytest.raises(KeyError):
        await store.update_turn("nope", answer="x")
    with pytest.raises(TypeError, match="consultation_id"):
        await store.update_turn(turn.id, consultation_id="other")
    with pytest.raises(ValueError, match="status"):
        await store.update_turn(turn.id, status="lost")
    assert "consultation_id" not in TURN_UPDATABLE_FIELDS


async def test_feedback_keeps_what_a_call_leaves_out_and_clears_with_none(store: Store, clock: FakeClock) -> None:
    parent = consultation(clock)
    await store.add(parent)

    rated = await store.set_feedback(parent.id, "U1", rating="helpful")
    assert rated == Feedback(consultation_id=parent.id, user_id="U1", rating="helpful", chosen=None, updated_at=START)
    clock.advance(2)
    chose = await store.set_feedback(parent.id, "U1", chosen=M.POLYMER)
    assert (chose.rating, chose.chosen, chose.updated_at) == ("helpful", M.POLYMER, START + timedelta(seconds=2))
    changed = await store.set_feedback(parent.id, "U1", rating="not_helpful", chosen=M.METAL)
    assert (changed.rating, changed.chosen) == ("not_helpful", M.METAL)
    cleared = await store.set_feedback(parent.id, "U1", rating=None)
    assert (cleared.rating, cleared.chosen) == (None, M.METAL)

    assert await store.feedback(parent.id) == [cleared]


async def test_choices_count_each_persons_latest_choice(store: Store, clock: FakeClock) -> None:
    parent, other = consultation(clock), consultation(clock, ts="200.1")
    await store.add(parent)
    await store.add(other)
    await store.set_feedback(parent.id, "U1", chosen=M.METAL)
    await store.set_feedback(parent.id, "U2", chosen=M.METAL)
    await store.set_feedback(parent.id, "U3", chosen=M.POLYMER)
    await store.set_feedback(parent.id, "U4", rating="helpful")
    await store.set_feedback(other.id, "U1", chosen=M.WOOD)
    clock.advance(1)
    await store.set_feedback(parent.id, "U1", chosen=M.POLYMER)  # changed their mind

    assert await store.choices(parent.id) == {M.POLYMER: 2, M.METAL: 1}
    assert await store.choices(other.id) == {M.WOOD: 1}
    assert await store.choices("nope") == {}
    assert [f.user_id for f in await store.feedback(parent.id)] == ["U2", "U3", "U4", "U1"]


async def test_feedback_on_an_unknown_consultation_or_with_a_bad_value_is_refused(
    store: Store, clock: FakeClock
) -> None:
    parent = consultation(clock)
    await store.add(parent)
    with pytest.raises(KeyError):
        await store.set_feedback("nope", "U1", rating="helpful")
    with pytest.raises(ValueError, match="rating"):
        await store.set_feedback(parent.id, "U1", rating="meh")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="chosen"):
        await store.set_feedback(parent.id, "U1", chosen="unobtainium")  # type: ignore[arg-type]
    assert await store.feedback(parent.id) == []


async def test_concurrent_choices_from_two_replicas_all_count_and_all_become_searchable(
    store: Store, clock: FakeClock, opener: Opener
) -> None:
    parent = consultation(clock, status=ConsultationStatus.DONE)
    await store.add(parent)
    classes = list(M)
    async with await opener() as replica:
        await asyncio.gather(
            *(
                (store if n % 2 else replica).set_feedback(parent.id, f"U{n}", chosen=material)
                for n, material in enumerate(classes)
            )
        )
    assert await store.choices(parent.id) == dict.fromkeys(classes, 1)
    for material in classes:
        assert [c.id for c in await store.search(material.value, ["C1"])] == [parent.id], material


async def test_a_thread_stays_muted_until_unmuted(store: Store, opener: Opener) -> None:
    assert not await store.muted("C1", "100.1")
    await store.mute("C1", "100.1", "U1")
    await store.mute("C1", "100.1", "U2")  # muting twice is fine

    async with await opener() as replica:
        assert await replica.muted("C1", "100.1")
    assert not await store.muted("C1", "100.2")
    assert not await store.muted("C2", "100.1")
    await store.unmute("C1", "100.1")
    assert not await store.muted("C1", "100.1")
    await store.unmute("C1", "100.1")
