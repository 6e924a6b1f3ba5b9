"""Finals: a follow-up waits for its consultation's final state, woken by the job or by polling."""

from __future__ import annotations

import asyncio

import pytest

from bot.finals import Finals
from bot.store import Consultation, ConsultationStatus


class FakeStore:
    """A dict of consultations that counts its reads."""

    def __init__(self, *records: Consultation) -> None:
        self.records = {r.id: r for r in records}
        self.reads = 0

    async def get(self, consultation_id: str) -> Consultation | None:
        self.reads += 1
        return self.records.get(consultation_id)

    def finish(self, consultation_id: str) -> None:
        record = self.records[consultation_id]
        self.records[consultation_id] = record.model_copy(update={"status": ConsultationStatus.DONE})


def _record(status: ConsultationStatus) -> Consultation:
    return Consultation(channel="C1", thread_ts="1.0", message_ts="1.0", status=status)


async def test_a_final_consultation_is_returned_at_once() -> None:
    record = _record(ConsultationStatus.FAILED)
    store = FakeStore(record)
    assert (await Finals().wait(record.id, store, poll_s=60)).status is ConsultationStatus.FAILED
    assert store.reads == 1


async def test_done_wakes_every_waiter_without_waiting_for_the_poll() -> None:
    record = _record(ConsultationStatus.RUNNING)
    store = FakeStore(record)
    finals = Finals()
    waiters = [asyncio.create_task(finals.wait(record.id, store, poll_s=60)) for _ in range(3)]
    while store.reads < 3:
        await asyncio.sleep(0)
    store.finish(record.id)
    finals.done(record.id)
    async with asyncio.timeout(5):
        results = await asyncio.gather(*waiters)
    assert {r.status for r in results} == {ConsultationStatus.DONE}
    assert finals._events == {} and finals._waiters == {}


async def test_a_consultation_another_instance_finishes_is_noticed_by_polling() -> None:
    record = _record(ConsultationStatus.RUNNING)
    store = FakeStore(record)
    waiter = asyncio.create_task(Finals().wait(record.id, store, poll_s=0.01))
    while store.reads < 2:
        await asyncio.sleep(0.005)
    store.finish(record.id)
    async with asyncio.timeout(5):
        assert (await waiter).status is ConsultationStatus.DONE


async def test_an_unknown_consultation_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        await Finals().wait("nope", FakeStore(), poll_s=60)
