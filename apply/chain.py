"""A speculative chain: the first N queued candidates tested at once, ``main`` moved in order.

Link k merges candidate c_k onto the commit of the link before it
(``M_k = M_{k-1} ⊕ c_k``, with ``merge-tree``, no checkout); its checks run in a
scratch worktree of its own, on a thread of a pool, while the other links'
checks run too. Only the head of the chain (the link built on ``main`` itself)
is ever settled, by the same steps as a serial apply: a passed head moves
``main`` by the fenced compare-and-swap and is integrated; a failed head is
blocked with the usual evidence. So a link integrates only once its own checks
and those of every link before it passed, and a candidate is blocked only on
the ``main`` it would have been tested on serially: the result is the serial one.

When the head is blocked, the links built on top of it are thrown away: each
is moved back to ``pending`` by a logged ``requeue`` ("rebuilt: base
invalidated by <culprit>"), then started again at the front of the chain and
rebuilt on the new base. A link whose build failed (a conflict, a
precondition) adds no commit, so the links after it are built on the link
before it and stay valid when it is blocked. When ``main`` was moved by
another writer, every link is rebuilt; the head is blocked with
``main_moved`` once it lost ``max_main_retries + 1`` races, as serially.

All links run under ONE lease, the chain lease (:meth:`Engine.hold_lease`):
it names no candidate, each link's ``start_apply`` joins it, and its entry
names the owner. If the integrator dies or stalls, the lease expires and
``Engine.recover`` settles every link at once: integrated if ``main`` has it,
else requeued. A ``stop`` event (a stop signal, set from any thread) ends the
chain at its next safe point: never during a move; the running checks are
killed and every link not yet settled is requeued before the lease is released.

A ``recall`` (an operator's control, read by the caller) asks the same of a
chain at its next safe point, with the reason it gives: a :class:`GiveBack`
without ``first`` (``pause --requeue``) requeues every unsettled link and
returns, as a stop does; one with ``first`` (a promoted candidate) requeues
them (they keep their queue places, behind the promoted one) and rebuilds the
chain from the queue's head, the promoted candidate first, unless it already
heads the chain. See docs/apply.md, "Speculative chains".
"""

from __future__ import annotations

import collections
import concurrent.futures
import threading
import time
from collections.abc import Callable

import attrs

from mergegate.statemachine import (
    Blocked,
    BlockedReport,
    Candidate,
    CheckResult,
    Engine,
    Evidence,
    InvalidInput,
    Outcome,
    Reason,
    State,
)

from .applier import GitApplier
from .built import Built, checks_failed

__all__ = ["ChainRun", "GiveBack", "integrate_chain"]

#: The reason logged on each link a stop signal requeues.
STOPPED = "requeued: the integrator was stopped before this link settled"

#: How often a link's running check looks whether its link was thrown away.
_STOP_POLL = 0.05

#: How often a chain shorter than N, waiting on its head, looks for new candidates:
#: a free slot takes one submitted meanwhile instead of idling until the head settles.
#: The look is one read; a write (the claim) follows only when one is queued.
_REFILL_EVERY = 0.25


class _Discarded(Exception):
    """The link was thrown away: its checks stop and its worktree is removed."""


@attrs.define(eq=False)
class _Link:
    """One candidate, started, merged onto ``base`` (or failed to), its checks maybe running."""

    candidate: Candidate
    base: str
    built: Built | Blocked
    future: concurrent.futures.Future[tuple[CheckResult, ...]] | None = None
    stop: threading.Event = attrs.Factory(threading.Event)

    @property
    def tip(self) -> str | None:
        """The commit the next link is built on, ``None`` if this link adds none."""
        return self.built.commit if isinstance(self.built, Built) else None


@attrs.frozen
class GiveBack:
    """A control asks the work in flight back: requeue every unsettled link, logging ``why``.

    Without ``first`` (a pause with requeue) the chain then returns. With
    ``first``, the slug of a promoted candidate, it rebuilds from the queue's
    head with that candidate first; nothing is thrown away if it heads the
    chain already, or if it is no longer queued.
    """

    why: str
    first: str | None = None


#: How a chain asks for a :class:`GiveBack`: called at each safe point (every 50 ms
#: while the head's checks run), it returns the one asked for since, once, or ``None``.
#: It must be cheap (no store read): see cli/controlwatch.py for one that is.
Recall = Callable[[], GiveBack | None]


@attrs.frozen
class ChainRun:
    """What one :func:`integrate_chain` did, every settling move in the order it was made."""

    outcomes: tuple[Outcome, ...]
    #: Slugs requeued because ``stop`` was set, in chain order.
    stopped: tuple[str, ...] = ()

    @property
    def integrated(self) -> tuple[str, ...]:
        """Slugs integrated, in the order ``main`` took them."""
        return self._slugs(State.INTEGRATED)

    @property
    def blocked(self) -> tuple[str, ...]:
        """Slugs blocked, in order."""
        return self._slugs(State.BLOCKED)

    @property
    def requeued(self) -> int:
        """How many times a link was thrown away and its candidate requeued."""
        return len(self._slugs(State.PENDING))

    def _slugs(self, state: State) -> tuple[str, ...]:
        return tuple(o.candidate.key.slug for o in self.outcomes if o.candidate.state is state)


def _with_main(report: BlockedReport, main: str) -> BlockedReport:
    """``report`` against ``main``, the base the candidate was blocked on."""
    return report if report.main_sha == main else attrs.evolve(report, main_sha=main)


@attrs.define
class _Chain:
    engine: Engine
    applier: GitApplier
    owner: str
    concurrency: int
    pool: concurrent.futures.ThreadPoolExecutor
    stop: threading.Event = attrs.Factory(threading.Event)
    recall: Recall | None = None
    #: A give-back taken from ``recall`` and not yet carried out.
    asked: GiveBack | None = None
    stopped: list[str] = attrs.Factory(list)
    main: str = ""
    links: list[_Link] = attrs.Factory(list)
    retest: collections.deque[Candidate] = attrs.Factory(collections.deque)
    attempts: dict[str, list[str]] = attrs.Factory(dict)
    outcomes: list[Outcome] = attrs.Factory(list)

    def heartbeat(self) -> None:
        self.engine.renew_lease(self.owner)

    def run(self) -> None:
        self.main = self.applier.main_sha()
        while True:
            if self.stop.is_set():
                self._stopped(STOPPED)
                return
            if self._asked_back():
                asked, self.asked = self.asked, None
                assert asked is not None
                if asked.first is None:
                    self._stopped(asked.why)
                    return
                self._rebuild(asked)
            self._fill()
            if not self.links:
                return
            if self._settle_head():
                # An approved change of the configuration is in main now: the
                # chain ends, and the integrator reads it before the next one.
                return

    def _stopped(self, why: str) -> None:
        """Requeue every link not yet settled, logging ``why``: none of them moved ``main``."""
        self.stopped = [link.candidate.key.slug for link in self.links]
        self._discard(self.links, why)
        self.links.clear()
        self.retest.clear()

    def _asked_back(self) -> bool:
        """Whether a give-back is due now (taken from ``recall``; a needless one is dropped)."""
        if self.asked is None and self.recall is not None:
            self.asked = self.recall()
            first = None if self.asked is None else self.asked.first
            if first is not None and not self._promotion_reorders(first):
                self.asked = None
        return self.asked is not None

    def _promotion_reorders(self, slug: str) -> bool:
        """Whether the promoted ``slug`` should head the chain and does not (a store read)."""
        if not self.links or self.links[0].candidate.key.slug == slug:
            return False
        if any(link.candidate.key.slug == slug for link in self.links):
            return True
        # Not in the chain: it must still be waiting (not taken and settled meanwhile).
        candidate = self.engine.store.candidate(slug)
        return candidate is not None and candidate.state in self.engine.table.queued

    def _rebuild(self, asked: GiveBack) -> None:
        """Throw every unsettled link away, logging why: the next fill starts from the queue's
        head, the promoted candidate, then the links in their places (positions are kept)."""
        self._discard(self.links, asked.why)
        self.links.clear()
        self.retest.clear()

    def stop_all(self) -> None:
        for link in self.links:
            link.stop.set()

    # -- building ------------------------------------------------------------

    def _fill(self) -> None:
        """Start candidates until the chain is N links long: thrown-away links first, in order."""
        while len(self.links) < self.concurrency:
            last = self.links[-1].built if self.links else None
            if isinstance(last, Built) and last.gate:
                # Links after a change of the configuration are checked by the new one,
                # which this integrator reads only once that change is in main.
                return
            if self.retest:
                again = self.retest.popleft()
                started: Outcome | None = self.engine.start_apply(
                    again.key.slug, owner=self.owner, expected_seq=again.seq
                )
            else:
                started = self.engine.start_next(owner=self.owner)
            if started is None:
                return
            self.links.append(self._link(started.candidate, self._tip()))

    def _tip(self) -> str:
        for link in reversed(self.links):
            if link.tip is not None:
                return link.tip
        return self.main

    def _link(self, candidate: Candidate, base: str) -> _Link:
        link = _Link(candidate, base, self.applier.build(candidate.key, base))
        if isinstance(link.built, Built) and not link.built.already and self.applier.has_checks:
            link.future = self.pool.submit(self._check, link)
        return link

    def _check(self, link: _Link) -> tuple[CheckResult, ...]:
        def tick() -> None:
            if link.stop.is_set() or self.stop.is_set():
                raise _Discarded

        assert isinstance(link.built, Built)
        return self.applier.run_checks(link.candidate.key, link.built, tick, _STOP_POLL)

    # -- settling the head ---------------------------------------------------

    def _result(self, head: _Link) -> Built | Blocked | None:
        """The head's checks' verdict; ``None`` if the chain was stopped while they ran."""
        if isinstance(head.built, Blocked):
            return Blocked(_with_main(head.built.report, self.main))
        if head.future is None:
            return head.built
        beat = time.monotonic() + self.applier.heartbeat_every
        refill = time.monotonic() + _REFILL_EVERY
        while True:
            try:
                # Short waits, so a stop is seen at once; the heartbeat keeps its period.
                results = head.future.result(timeout=_STOP_POLL)
            except concurrent.futures.TimeoutError:
                if self.stop.is_set() or self._asked_back():
                    return None
                if time.monotonic() >= beat:
                    self.heartbeat()
                    beat = time.monotonic() + self.applier.heartbeat_every
                if len(self.links) < self.concurrency and time.monotonic() >= refill:
                    refill = time.monotonic() + _REFILL_EVERY
                    if self.retest or self.engine.store.next_candidate() is not None:
                        self._fill()
                continue
            except _Discarded:
                if self.stop.is_set():
                    return None
                raise
            break
        failed = checks_failed(head.candidate.key, head.built, results)
        return head.built if failed is None else failed

    def _settle_head(self) -> bool:
        """Settle the chain's head if it can be; whether it moved a change of the configuration."""
        head = self.links[0]
        slug, seq = head.candidate.key.slug, head.candidate.seq
        result = self._result(head)
        if result is None or (
            not isinstance(result, Blocked) and (self.stop.is_set() or self._asked_back())
        ):
            # Stopped or asked back: the head is not moved now; run() requeues it with the rest.
            return False
        if isinstance(result, Blocked):
            self._block(head, result.report)
            return False
        if result.already:
            self._settled(self.engine.integrate(slug, main_sha=self.main, expected_seq=seq))
            return False
        moved = self.applier.move(result, self.heartbeat)
        if moved is None:
            self._main_moved(head)
            return False
        if isinstance(moved, Blocked):
            self._block(head, moved.report)
            return False
        self._settled(self.engine.integrate(slug, main_sha=result.commit, expected_seq=seq))
        self.main = result.commit
        return result.gate

    def _settled(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        self.links.pop(0)

    def _block(self, head: _Link, report: BlockedReport) -> None:
        key = head.candidate.key
        outcome = self.engine.block(
            key.slug, _with_main(report, self.main), expected_seq=head.candidate.seq
        )
        self._settled(outcome)
        self._revalidate(f"rebuilt: base invalidated by {key.slug} ({report.reason.value})")

    def _main_moved(self, head: _Link) -> None:
        """Another writer moved ``main``: rebuild every link; block a head that lost too often."""
        tried = self.attempts.setdefault(head.candidate.key.slug, [])
        tried.append(self.main)
        was, self.main = self.main, self.applier.main_sha()
        if len(tried) > self.applier.max_main_retries:
            report = BlockedReport(
                Reason.MAIN_MOVED,
                was,
                Evidence(main_attempts=tuple(tried)),
                detail=f"{self.applier.main_ref} moved during each of {len(tried)} attempts",
            )
            self._settled(
                self.engine.block(head.candidate.key.slug, report, expected_seq=head.candidate.seq)
            )
        self._revalidate(
            f"rebuilt: main moved by another writer (from {was[:12]} to {self.main[:12]})"
        )

    def _revalidate(self, why: str) -> None:
        """Throw away every link from the first one whose base is no longer right."""
        expected = self.main
        for i, link in enumerate(self.links):
            if link.base != expected:
                self._discard(self.links[i:], why)
                del self.links[i:]
                return
            expected = link.tip or expected

    def _discard(self, links: list[_Link], why: str) -> None:
        for link in links:
            link.stop.set()
        requeued = []
        for link in links:
            outcome = self.engine.requeue(
                link.candidate.key.slug, why=why, expected_seq=link.candidate.seq
            )
            self.outcomes.append(outcome)
            requeued.append(outcome.candidate)
        self.retest.extendleft(reversed(requeued))


def integrate_chain(
    engine: Engine,
    applier: GitApplier,
    *,
    owner: str,
    concurrency: int,
    stop: threading.Event | None = None,
    recall: Recall | None = None,
) -> ChainRun:
    """Integrate the whole queue, ``concurrency`` candidates tested at once; see the module.

    Takes the chain lease for ``owner`` (raises LeaseHeld if any lease is
    held), and releases it when the queue is empty. With ``concurrency`` 1 it
    does what a loop of ``Engine.apply_next`` does. If it raises (git failed,
    the lease was lost), the links stay ``applying`` under the lease, and
    ``Engine.recover`` settles them once it expires. When ``stop`` is set it
    returns at the next safe point (never mid-move), every unsettled link
    requeued and named in :attr:`ChainRun.stopped`. ``recall`` is asked at the same
    safe points for a :class:`GiveBack` (see the module).
    """
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise InvalidInput("concurrency", concurrency, "give an integer of 1 or more")
    engine.hold_lease(owner)
    # Twice the chain's length: a thrown-away link's check may still be stopping
    # when its rebuilt successor starts, and must not delay it. The worktrees
    # are kept from link to link, and removed once every link's thread is done.
    with (
        applier.reusing_worktrees(),
        concurrent.futures.ThreadPoolExecutor(
            max_workers=2 * concurrency, thread_name_prefix="mergegate-link"
        ) as pool,
    ):
        chain = _Chain(engine, applier, owner, concurrency, pool, stop or threading.Event(), recall)
        try:
            chain.run()
        finally:
            chain.stop_all()
    engine.release_lease(owner)
    return ChainRun(tuple(chain.outcomes), tuple(chain.stopped))
