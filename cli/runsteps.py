"""The steps of ``mergegate run``: what the loop does with the queue's next work.

A step is a plain function of the loop (:data:`Step`), so a step that handles
several candidates at once can replace the default without touching the loop.
The default, :func:`apply_next`, claims the oldest candidate and applies it.

With ``concurrency`` above 1 the step is :func:`chain_step`: the queue is
drained by :func:`mergegate.apply.integrate_chain`, that many candidates
tested at once. A stop signal then only sets an event the chain polls: it kills
the running checks, never interrupts a move, requeues every link not yet
settled and releases the chain lease. Outcomes are counted and shown as each
link settles (engine hooks), not when the whole chain returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

import attrs

from mergegate.statemachine import Outcome, RunSummary, State

if TYPE_CHECKING:
    from mergegate.apply import GitApplier
    from mergegate.statemachine import Engine

    from .stopsignal import StopSignal

__all__ = ["MAX_CONCURRENCY", "Step", "apply_next", "chain_step"]

#: The most candidates ``run --concurrency`` tests at once: each is a worktree
#: and a check process of its own, and past a few the chain rarely gets that long
#: before a failure throws its tail away.
MAX_CONCURRENCY = 32

#: One step of the loop: handle the next candidate(s) and return their outcomes;
#: empty when the queue is empty. It may raise LeaseHeld (another integrator holds
#: the lease): the loop then waits and tries again.
Step = Callable[["Loop"], Sequence[Outcome]]


class Loop(Protocol):
    """What a step may use of the run loop (``runloop.Loop`` is the one there is)."""

    applier: GitApplier
    owner: str
    concurrency: int
    stop: StopSignal
    #: Set while a chain runs, so the loop's hooks count links as they settle.
    chaining: bool
    tally: RunSummary

    @property
    def engine(self) -> Engine: ...


def apply_next(loop: Loop) -> Sequence[Outcome]:
    """The default step: claim the oldest pending or retry candidate and apply it."""
    outcome = loop.engine.apply_next(loop.applier, owner=loop.owner)
    return () if outcome is None else (outcome,)


def chain_step(loop: Loop) -> Sequence[Outcome]:
    """Drain the queue as speculative chains of ``loop.concurrency`` links; see the module."""
    # Imported here: the serial loop never pays for the chain's thread pool.
    from mergegate.apply import integrate_chain  # noqa: PLC0415

    loop.chaining = True
    try:
        run = integrate_chain(
            loop.engine,
            loop.applier,
            owner=loop.owner,
            concurrency=loop.concurrency,
            stop=loop.stop.event,
            recall=loop.stop.take_recall,
        )
    finally:
        loop.chaining = False
    if run.stopped:
        loop.tally = attrs.evolve(loop.tally, released=loop.tally.released + len(run.stopped))
    return [o for o in run.outcomes if o.candidate.state in (State.INTEGRATED, State.BLOCKED)]
