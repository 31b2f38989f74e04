"""One store, one Engine, several threads: the store keeps their transactions apart."""

from __future__ import annotations

import threading
import time
from itertools import groupby

from mergegate.persistence.contract import conflict_report
from mergegate.statemachine import CandidateKey, Engine, LeaseHeld, State, Store

THREADS = 4
ROUNDS = 6
MAIN = "f" * 40


def _cycle(engine: Engine, worker: int, round_: int) -> None:
    """Submit, read, and drive one candidate through a block and a resume to integrated."""
    slug = f"t{worker}-r{round_}"
    engine.submit(CandidateKey(slug, slug, f"{worker:x}{round_:x}".ljust(40, "a")))
    assert engine.get(slug).state is State.PENDING
    owner = f"w{worker}"
    for move in ("block", "integrate"):
        while True:  # the one lease is what the threads queue for
            try:
                engine.start_apply(slug, owner=owner)
                break
            except LeaseHeld:
                time.sleep(0.001)
        if move == "block":
            engine.block(slug, conflict_report(f"f{worker}"))
            engine.start_remediation(slug)
            engine.resume(slug, force_reason="thread test")
        else:
            engine.integrate(slug, main_sha=MAIN)
    assert engine.get(slug).state is State.INTEGRATED


def test_threads_sharing_one_store_keep_every_log_whole(store: Store) -> None:
    """N threads x M submit+get+moves on one Engine: no error, verify() empty, logs gap-free."""
    engine = Engine(store)
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def work(worker: int) -> None:
        start.wait()
        try:
            for round_ in range(ROUNDS):
                _cycle(engine, worker, round_)
        except BaseException as err:  # reported by the main thread
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert engine.verify() == []
    assert store.integrity_problems() == []
    candidates = store.candidates()
    assert len(candidates) == THREADS * ROUNDS
    assert all(c.state is State.INTEGRATED for c in candidates)
    for cid, entries in groupby(store.log(), key=lambda t: t.candidate_id):
        assert [t.seq for t in entries] == list(range(1, 8)), cid
