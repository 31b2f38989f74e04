"""What a store keeps about its repository: whose queue it is, and the outside moves of ``main``.

A store serves one repository: :class:`StoreIdentity` records which (its
root commit) and the store's own id, which the repository records in turn
(git config ``mergegate.store-id``), so a second store pointed at the same
``main`` is refused instead of running a second queue. An
:class:`Acknowledgement` is an operator's logged word that a commit on
``main``'s first-parent history was an intended move outside the queue. An
:class:`Approval` is an operator's logged word that one candidate, at one exact
sha, may change the integrator's configuration (reason ``config_changed``).
"""

from __future__ import annotations

from datetime import datetime

import attrs

__all__ = ["Acknowledgement", "Approval", "StoreIdentity"]


@attrs.frozen
class StoreIdentity:
    """The store's id and the repository it serves (its root commit), bound once by ``init``."""

    store_id: str
    repository: str
    bound_at: datetime
    bound_by: str


@attrs.frozen
class Acknowledgement:
    """``sha`` moved ``main`` outside the queue on purpose: ``why``, said by ``actor`` at ``at``."""

    sha: str
    why: str
    actor: str
    at: datetime


@attrs.frozen
class Approval:
    """Candidate ``slug`` at exactly ``sha`` may change the configuration: ``why``, said by
    ``actor`` at ``at``. A new sha of the same slug needs an approval of its own."""

    slug: str
    sha: str
    why: str
    actor: str
    at: datetime
