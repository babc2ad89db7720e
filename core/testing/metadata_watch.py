"""Conformance tests of the metadata store's coordination records: the run key,
leases and watcher state (part of :class:`~conveyor.testing.metadata.MetadataStoreContract`).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from conveyor.errors import AlreadyExistsError, ConveyorError
from conveyor.interfaces.metadata import Lease, MetadataStore, WatchState

T0 = datetime(2024, 3, 31, 1, 0, tzinfo=UTC)
TTL = timedelta(seconds=30)


class WatchRecordsContract:
    """Run keys, leases and watcher state, as ``conveyor watch`` relies on them."""

    def test_a_trigger_event_starts_at_most_one_run(self, store: MetadataStore) -> None:
        event = store.record_trigger_event("nightly", "due", key="tick-1")
        first = store.start_run("train", trigger_event=event.id)
        with pytest.raises(AlreadyExistsError, match=event.id):
            store.start_run("train", trigger_event=event.id)
        assert [r.id for r in store.search_runs(trigger_event=event.id)] == [first]
        store.start_run("train")  # runs without an event are not limited
        store.start_run("train")
        assert len(store.search_runs(pipeline="train")) == 3

    def test_runs_can_be_recorded_interrupted(self, store: MetadataStore) -> None:
        run_id = store.start_run("train")
        store.finish_run(run_id, "interrupted", error="watcher died")
        run = store.get_run(run_id)
        assert (run.status, run.error) == ("interrupted", "watcher died")
        assert run.ended is not None
        assert [r.id for r in store.search_runs(status="interrupted")] == [run_id]

    def test_a_lease_has_one_holder_until_it_expires(self, store: MetadataStore) -> None:
        lease = store.acquire_lease("pipeline:train", "a", now=T0, ttl=TTL, key="e1")
        assert isinstance(lease, Lease)
        assert (lease.holder, lease.key, lease.acquired, lease.expires) == ("a", "e1", T0, T0 + TTL)
        assert store.acquire_lease("pipeline:train", "b", now=T0 + TTL / 2, ttl=TTL) is None
        assert store.get_lease("pipeline:train") == lease, "a refused take changes nothing"
        # the holder renews; a renewal by anyone else is refused
        renewed = store.renew_lease("pipeline:train", "a", now=T0 + TTL / 2, ttl=TTL)
        assert renewed is not None
        assert renewed.expires == T0 + TTL * 1.5
        assert store.renew_lease("pipeline:train", "b", now=T0, ttl=TTL) is None
        assert store.acquire_lease("pipeline:train", "b", now=T0 + TTL, ttl=TTL) is None
        # once it lapses, another holder takes it over
        taken = store.acquire_lease("pipeline:train", "b", now=T0 + TTL * 1.5, ttl=TTL, key="e2")
        assert taken is not None
        assert (taken.holder, taken.key, taken.acquired) == ("b", "e2", T0 + TTL * 1.5)
        assert store.renew_lease("pipeline:train", "a", now=T0 + TTL * 1.5, ttl=TTL) is None
        assert store.release_lease("pipeline:train", "a") is False
        held = store.get_lease("pipeline:train")
        assert held is not None
        assert held.holder == "b"
        assert store.release_lease("pipeline:train", "b") is True
        assert store.get_lease("pipeline:train") is None
        # leases on other names are independent
        assert store.acquire_lease("pipeline:score", "a", now=T0, ttl=TTL) is not None
        assert store.acquire_lease("pipeline:train", "c", now=T0, ttl=TTL) is not None

    def test_the_holder_retakes_its_own_lease(self, store: MetadataStore) -> None:
        store.acquire_lease("p", "a", now=T0, ttl=TTL, key="e1")
        again = store.acquire_lease("p", "a", now=T0 + timedelta(seconds=1), ttl=TTL, key="e2")
        assert again is not None
        assert (again.key, again.acquired, again.expires) == (
            "e2",
            T0,
            T0 + timedelta(seconds=1) + TTL,
        )
        lease = store.get_lease("p")
        assert lease is not None
        assert lease.expired(T0 + timedelta(seconds=1) + TTL)
        assert not lease.expired(T0 + TTL)

    def test_bad_leases_are_refused(self, store: MetadataStore) -> None:
        with pytest.raises(ConveyorError, match="naive"):
            store.acquire_lease("p", "a", now=datetime(2024, 1, 1), ttl=TTL)
        with pytest.raises(ConveyorError, match="positive"):
            store.acquire_lease("p", "a", now=T0, ttl=timedelta(0))
        with pytest.raises(ConveyorError, match="holder"):
            store.acquire_lease("p", "", now=T0, ttl=TTL)
        assert store.get_lease("p") is None

    def test_concurrent_takers_get_one_lease(self, store: MetadataStore) -> None:
        winners: list[str] = []
        barrier = threading.Barrier(8)

        def take(holder: str) -> None:
            barrier.wait()
            if store.acquire_lease("contended", holder, now=T0, ttl=TTL) is not None:
                winners.append(holder)

        threads = [threading.Thread(target=take, args=(f"h{i}",)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(winners) == 1
        held = store.get_lease("contended")
        assert held is not None
        assert held.holder == winners[0]

    def test_watch_state_round_trips_and_is_replaced(self, store: MetadataStore) -> None:
        assert store.get_watch_state("nightly") is None
        written = store.put_watch_state("nightly", {"last_tick": T0.isoformat(), "n": 1})
        assert isinstance(written, WatchState)
        read = store.get_watch_state("nightly")
        assert read is not None
        assert (read.name, read.state) == ("nightly", {"last_tick": T0.isoformat(), "n": 1})
        store.put_watch_state("nightly", {"n": 2})
        replaced = store.get_watch_state("nightly")
        assert replaced is not None
        assert replaced.state == {"n": 2}, "replaced, not merged"
        assert store.get_watch_state("other") is None
