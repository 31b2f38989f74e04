"""How ``mergegate run`` settles applies left under a lease: a dead integrator's, and
its own when something cuts them short.

Recovery (:func:`recover`) runs at start, between steps and after every wait:
an expired apply, or at once one whose process on this host is gone, is
integrated if ``main`` has it and blocked otherwise (``recovery.py``).

A stop signal (SIGINT, SIGTERM or SIGHUP) while a check runs, an ordinary event
of the host (a held lock, a busy store), or a control that asks the work back
(a ``pause --requeue``, a promote) leaves a candidate applying under this
integrator's own lease. :class:`Release` settles each: integrated if ``main``
already has it, else requeued at its place by a logged move that names the
cause (no follow-up: the stop is not the candidate's fault; see
``mergegate.statemachine._interruptions``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import attrs

from mergegate.apply import RemoteUnreachable, RepositoryBusy
from mergegate.statemachine import MergegateError, MoveInFlight, Outcome

from .cirunner import prune_stale_check_refs
from .recovery import recover_now
from .standby import ordinary

if TYPE_CHECKING:
    from mergegate.apply import GitApplier
    from mergegate.statemachine import Engine

    from .session import Session

__all__ = ["Release", "prune_check_refs", "recover"]


def recover(
    session: Session,
    applier: GitApplier,
    owner: str,
    *,
    note: Callable[[str], None],
    settled: Callable[[Outcome], None],
) -> None:
    """Settle what dead integrators left, each outcome handed to ``settled``; ``owner``
    is the run that carries on. A live mover, or an ordinary event, defers it to the next call.
    """
    try:
        # As the integrator that carries on, it says so after a dead one's work is settled.
        recovered = recover_now(session, applier.main_sha, applier, serving=owner)
    except MoveInFlight:
        # A live mover holds main: it is working, not dead; nothing to settle.
        return
    except MergegateError as err:
        # main not born yet, a lock held, the store busy: recovery runs again soon.
        if not ordinary(err):
            raise
        return
    if recovered.stale_lock is not None:
        note(f"removed stale lock {recovered.stale_lock} of a dead mover")
    for outcome in recovered.outcomes:
        settled(outcome)


def prune_check_refs(session: Session, applier: GitApplier, note: Callable[[str], None]) -> None:
    """Delete the check refs a killed integrator left on the remote (cirunner.py)."""
    try:
        gone = prune_stale_check_refs(session.config(), applier, session.store())
    except MergegateError as err:
        # The remote may be down for a moment; the refs only cost space until next time.
        note(f"stale check refs not pruned: {err}")
        return
    if gone:
        note(f"pruned {len(gone)} stale check refs ({gone[0]}, ...)")


def _release_why(cause: str, how: Literal["stop", "host", "recall"]) -> str | None:
    """The requeue note of a release that is no interruption; ``None`` for a stop (one)."""
    if how == "stop":
        return None
    return cause if how == "recall" else f"the host was busy: {cause}"


@attrs.frozen
class Release:
    """Settles the applies this integrator (``owner``) holds, each handed to ``settled``."""

    session: Session
    #: An Engine on a fresh connection: the signal may have landed inside a store call.
    engine: Engine
    applier: GitApplier
    owner: str
    #: Counts and shows one settled outcome (the loop's tally and reporter).
    settled: Callable[[Outcome], None]
    #: The apply stopped because the remote could not be read before the push.
    pushed_nothing: bool = False

    def __call__(self, cause: str, *, how: Literal["stop", "host", "recall"]) -> None:
        """Settle this integrator's own applies, cut short by a stop signal, a host event
        or a control that asked them back.

        Each is requeued with ``cause`` logged. A stop is an interruption that
        counts toward blocking a candidate that keeps stopping its integrator
        (``Engine.interruption``); a held lock or a busy store (``host``) is
        plainly the host's and never does; nor does a ``recall``, the
        operator's choice, logged as ``cause`` says (it names the control).
        """
        engine = self.engine
        why = _release_why(cause, how)
        mine = [lease for lease in self.session.store().leases() if lease.owner == self.owner]
        for lease in mine:
            if lease.candidate_id is None:
                self._chain(why)
                continue
            candidate = self.session.store().candidate_by_id(lease.candidate_id)
            if candidate is None:
                continue
            with contextlib.ExitStack() as stack:
                main = self._main(stack)
                if self.applier.contains(candidate.key.sha, main):
                    outcome = engine.integrate(
                        candidate.key.slug, main_sha=main, expected_seq=candidate.seq
                    )
                elif why is None:
                    # Stopped by its operator: not the candidate's fault. It is
                    # requeued at its place, with no follow-up (interruptions.py).
                    outcome = engine.fire(engine.interruption(candidate, main, lease, cause))
                else:
                    outcome = engine.requeue(
                        candidate.key.slug, why=why, expected_seq=candidate.seq
                    )
            self.settled(outcome)

    def _main(self, stack: contextlib.ExitStack) -> str:
        """main's sha, held under git's lock on it unless another process holds that lock.

        Only this integrator moves a candidate applying under its lease, and
        it is not moving one now: a read of main is as good as a held one
        here, so a held ``main.lock`` (what this release may be for) is no
        reason to leave the candidate applying.
        """
        try:
            return stack.enter_context(self.applier.hold_main()).main_sha
        except (RepositoryBusy, MoveInFlight):
            return self.applier.main_sha()
        except RemoteUnreachable:
            if not self.pushed_nothing:
                raise
            # Releasing an apply that pushed nothing (the loop's stand-by): the remote's
            # main cannot hold it, and the local main is the one it was built on.
            return self.applier.main_sha()

    def _chain(self, why: str | None) -> None:
        """Settle a chain left under this integrator's lease: each link requeued.

        Only reached if the chain raised on its way out; a chain that saw the
        stop requeued its links itself. A link ``main`` already has is integrated.
        ``why`` (a host event, a recall) requeues the links with that note; a stop
        (``None``) counts as each link's interruption, as for a single apply. A
        host event once counted too, logged as the chain losing its lease: a
        person holding main's lock three times blocked an innocent candidate.
        """
        with self.applier.hold_main() as held:
            outcomes = self.engine.recover(
                held.main_sha,
                contains=lambda sha: self.applier.contains(sha, held.main_sha),
                abandoned=lambda lease: lease.owner == self.owner,
                why=why,
            )
        for outcome in outcomes:
            self.settled(outcome)
