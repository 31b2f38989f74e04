"""Queue controls: an operator pauses the queue, drains it, or puts one candidate first.

Each control is a row of an append-only log (who, when, why), shared by every
integrator of the store, and what is in force is read from it: the newest
``pause`` or ``unpause`` says whether the queue is paused, the newest ``drain``
or ``undrain`` whether it is draining.

- **pause** is a freeze: no candidate starts an apply (the store's claim finds
  no head, and an explicit ``start_apply`` raises QueuePaused), while what is
  in flight finishes, or with ``requeue`` is given back: ``mergegate run``
  requeues what it holds at its next safe point (cli/controlwatch.py).
  Submissions go on queueing.
- **drain** closes the door: a submit of a new candidate raises QueueDraining,
  while everything already admitted goes on being applied until the queue is
  empty (a load balancer's drain, Kubernetes' cordon), so an operator can take
  the integrators down for maintenance with nothing left waiting.
- **promote** puts a queued candidate before every other active one (its queue
  position becomes the smallest less one), so it is the next any integrator
  takes and every later link of a speculative chain is built on it (a run
  applying rebuilds its chain, or gives back its serial check, with it first).

The records are here; ``Engine.pause`` and the others check and log a control
in ``_controls`` (docs/lifecycle.md, "Queue controls").
"""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

from .errors import QueueDraining, QueuePaused

__all__ = ["WHY_REQUIRED", "Control", "ControlEntry", "QueueControls"]


class Control(enum.StrEnum):
    """What an operator did to the queue as a whole (or, for ``promote``, to its order)."""

    PAUSE = "pause"
    UNPAUSE = "unpause"
    DRAIN = "drain"
    UNDRAIN = "undrain"
    PROMOTE = "promote"


#: The controls that must say why (the ones that take something away or reorder).
WHY_REQUIRED = frozenset({Control.PAUSE, Control.DRAIN, Control.PROMOTE})


@attrs.frozen
class ControlEntry:
    """One logged control: ``action`` by ``actor`` at ``at``, for ``why``.

    ``slug`` names the promoted candidate (``promote`` only); ``requeue`` is a
    pause that asked for the work in flight back in the queue.
    """

    id: int
    action: Control
    actor: str
    at: datetime
    why: str | None = None
    slug: str | None = None
    requeue: bool = False


@attrs.frozen
class QueueControls:
    """What is in force: the pause and the drain, each the entry that began it, or ``None``."""

    paused: ControlEntry | None = None
    draining: ControlEntry | None = None

    def check_start(self) -> None:
        """Raise QueuePaused while the queue is paused."""
        p = self.paused
        if p is not None:
            raise QueuePaused(p.actor, p.why, p.at.isoformat())

    def check_admit(self, slug: str) -> None:
        """Raise QueueDraining while the queue is draining: it admits no new candidate."""
        d = self.draining
        if d is not None:
            raise QueueDraining(slug, d.actor, d.why, d.at.isoformat())
