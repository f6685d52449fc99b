"""Model-based test: one Semaphore on a real event loop against a sequential FIFO model.

Every rule acts on the real semaphore and on the model (``_support.Model``). Acquire
tasks update the model from inside the task, in the same loop step as the real
operation, so the two never drift apart between steps. After every rule the free
counter, the queue (needed/assigned per position, through the ``_queue_snapshot`` test
hook) and the conservation of permits are compared; a task that gets a Permit the FIFO
model did not grant fails ``Model.resume_ok``.
"""

from __future__ import annotations

import asyncio

from _support import Model, real_queue
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from batchsem import MAX_PERMITS, AcquireError, Closed, NoPermits, Permit, Semaphore
from batchsem.tracing import MemoryTracer


class SemaphoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.sem: Semaphore | None = None
        self.model = Model(0)
        self.traced = False
        self.initial = 0
        self.added = 0
        self.forgotten = 0
        self.forgotten_via_permit = 0
        self.next_id = 0
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.held: dict[int, Permit] = {}  # permit id -> Permit (from acquire or try_acquire)
        self.resumed_ok: list[int] = []  # request ids, in the order their tasks got a Permit

    # ------------------------------------------------------------------ setup

    @initialize(permits=st.integers(0, 8), traced=st.booleans())
    def setup(self, permits: int, traced: bool) -> None:
        # With a tracer every acquire takes the slow path; without one the fast paths
        # are exercised too.
        self.traced = traced
        self.sem = Semaphore(permits, tracer=MemoryTracer() if traced else None)
        self.model = Model(permits)
        self.initial = permits

    def _new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    async def _acquirer(self, rid: int, n: int) -> None:
        sem, model = self.sem, self.model
        assert sem is not None
        model.request(rid, n)  # same loop step as the real request below
        try:
            permit = await sem.acquire(n)
        except asyncio.CancelledError:
            model.abandon(rid)
            raise
        except AcquireError:
            model.resume_closed(rid)
            return
        assert model.resume_ok(rid) == n
        assert permit.num_permits == n
        self.resumed_ok.append(rid)
        self.held[rid] = permit

    # ------------------------------------------------------------------ rules

    @rule(n=st.integers(0, 8), start=st.booleans())
    def start_acquire(self, n: int, start: bool) -> None:
        rid = self._new_id()
        self.tasks[rid] = self.loop.create_task(self._acquirer(rid, n))
        if start:  # let it make its request now (else a later step does)
            self.loop.run_until_complete(asyncio.sleep(0))

    @precondition(lambda self: any(not t.done() for t in self.tasks.values()))
    @rule(data=st.data())
    def cancel_task(self, data: st.DataObject) -> None:
        pending = sorted(rid for rid, t in self.tasks.items() if not t.done())
        rid = data.draw(st.sampled_from(pending))
        self.tasks[rid].cancel()

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data(), whole=st.booleans())
    def release_permit(self, data: st.DataObject, whole: bool) -> None:
        pid = data.draw(st.sampled_from(sorted(self.held)))
        permit = self.held[pid]
        n = permit.num_permits
        if whole or n == 0:
            del self.held[pid]
            permit.release()
            self.model.add(n)
            assert permit.num_permits == 0
            return
        k = data.draw(st.integers(0, n))
        part = permit.split(k)
        assert part is not None
        assert (part.num_permits, permit.num_permits) == (k, n - k)
        assert permit.split(n - k + 1) is None
        part.release()
        self.model.add(k)

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def forget_permit(self, data: st.DataObject) -> None:
        pid = data.draw(st.sampled_from(sorted(self.held)))
        permit = self.held.pop(pid)
        self.forgotten_via_permit += permit.num_permits
        permit.forget()

    @precondition(lambda self: self.sem is not None)
    @rule(k=st.integers(0, 8))
    def add_permits(self, k: int) -> None:
        assert self.sem is not None
        self.sem.add_permits(k)
        self.model.add(k)
        self.added += k

    @precondition(lambda self: self.sem is not None)
    @rule()
    def add_too_many(self) -> None:
        sem = self.sem
        assert sem is not None
        before = (sem.available_permits, sem.waiting, real_queue(sem))
        try:
            sem.add_permits(MAX_PERMITS - sem.available_permits + 1)
        except ValueError:
            pass
        else:
            raise AssertionError("add_permits beyond MAX_PERMITS did not raise")
        assert (sem.available_permits, sem.waiting, real_queue(sem)) == before

    @precondition(lambda self: self.sem is not None)
    @rule(k=st.integers(0, 10))
    def forget_permits(self, k: int) -> None:
        assert self.sem is not None
        taken = self.sem.forget_permits(k)
        assert taken == self.model.forget(k)
        self.forgotten += taken

    @precondition(lambda self: self.sem is not None)
    @rule(k=st.integers(0, 8))
    def try_acquire(self, k: int) -> None:
        assert self.sem is not None
        expected = self.model.try_acquire(k)
        try:
            permit = self.sem.try_acquire(k)
        except Closed:
            assert expected == "closed"
        except NoPermits:
            assert expected == "none"
        else:
            assert expected == "ok"
            assert permit.num_permits == k
            self.held[self._new_id()] = permit

    @precondition(lambda self: self.sem is not None)
    @rule()
    def close(self) -> None:
        assert self.sem is not None
        self.sem.close()
        self.model.close()
        assert self.sem.closed

    @rule(k=st.integers(1, 3))
    def step(self, k: int) -> None:
        for _ in range(k):
            self.loop.run_until_complete(asyncio.sleep(0))

    # ------------------------------------------------------------------ checks

    def _held_total(self) -> int:
        return sum(p.num_permits for p in self.held.values())

    @invariant()
    def matches_model(self) -> None:
        sem, model = self.sem, self.model
        if sem is None:
            return
        for t in self.tasks.values():  # surface assertion failures raised inside tasks
            if t.done() and not t.cancelled() and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]
        model.check()
        assert sem.closed == model.closed
        assert sem.available_permits == model.counter
        assert sem.waiting == len(model.queue)
        assert real_queue(sem) == model.snapshot()
        # conservation of permits
        assert (
            sem.available_permits + self._held_total() + model.reserved()
            == self.initial + self.added - self.forgotten - self.forgotten_via_permit
        )
        # grants: a task gets a Permit only if the FIFO model granted it (resume_ok);
        # together with the queue snapshot after every step this pins the grant order.
        # (Resumption order is not checked: wake-ups from outside the loop go through
        # call_soon_threadsafe and may legitimately run after later in-loop wake-ups.)
        assert set(self.resumed_ok) <= set(model.grant_order)

    def teardown(self) -> None:
        try:
            pending = [t for t in self.tasks.values() if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            if self.sem is not None:
                self.matches_model()
                assert self.sem.waiting == 0
                assert self.model.queue == []
                for permit in self.held.values():
                    permit.release()
                self.held.clear()
        finally:
            self.loop.run_until_complete(asyncio.sleep(0))
            self.loop.close()


def test_semaphore_stateful() -> None:
    """The machine, run against the implementation under test (module names are rebound)."""
    run_state_machine_as_test(
        SemaphoreMachine,
        settings=settings(
            max_examples=300,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


def test_model_detects_barging() -> None:
    """Sanity check of the model itself: it refuses a grant FIFO would not make."""
    model = Model(2)
    assert model.request(1, 5) == "queued"
    assert model.request(2, 1) == "queued"
    model.add(1)
    assert model.snapshot() == [(5, 3), (1, 0)]
    try:
        model.resume_ok(2)
    except AssertionError:
        pass
    else:
        raise AssertionError("model accepted an out-of-order grant")
    model.add(4)  # 2 complete request 1, 1 serves request 2, 1 is left over
    assert model.grant_order == [1, 2]
    assert model.counter == 1
