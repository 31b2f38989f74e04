"""The store's ledger of its repository: the identity binding, the acknowledged outside
moves and the approved configuration changes.

All are rows written once and never changed (migrations 9 and 12), read by the
commands that can move ``main`` (the binding), by ``verify`` (the moves) and by
the applier and ``resume`` (the approvals).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Protocol

from mergegate.statemachine import (
    InvalidInput,
)
from mergegate.statemachine._validation import check_sha, check_slug, check_text
from mergegate.statemachine.ledger import Acknowledgement, Approval, StoreIdentity

from .dialect import Dialect
from .rows import _time

__all__ = ["LedgerReads"]

_IDENTITY = "SELECT store_id, repository, bound_at, bound_by FROM store_identity WHERE id = 1"
_ACK = "SELECT sha, why, actor, at FROM acknowledged_moves"
_APPROVAL = "SELECT slug, sha, why, actor, at FROM approvals"


class _Host(Protocol):
    def _query(self, query: str, params: tuple[Any, ...] = ()) -> list[Any]: ...

    def transaction(self) -> Any: ...

    @property
    def _dialect(self) -> Dialect: ...


class LedgerReads:
    """Mixed into :class:`~.sqlstore.SQLStore`: the ledger's methods of the Store protocol."""

    def identity(self: _Host) -> StoreIdentity | None:
        rows = self._query(_IDENTITY)
        return _identity(self._dialect, rows[0]) if rows else None

    def bind_repository(self: _Host, repository: str, *, actor: str, at: datetime) -> StoreIdentity:
        check_sha(repository, field="repository root commit")
        check_text(actor, field="actor")
        d = self._dialect
        with self.transaction() as tx:
            # ON CONFLICT keeps the first binding: two hosts running init at once
            # on a new store both read back the one that was made.
            tx.execute(
                "INSERT INTO store_identity (id, store_id, repository, bound_at, bound_by) "
                "VALUES (1, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                (uuid.uuid4().hex, repository, d.time_in(at), d.text_in(actor)),
            )
            row = tx.rows(_IDENTITY)[0]
        return _identity(d, row)

    def acknowledge(
        self: _Host, sha: str, why: str, *, actor: str, at: datetime
    ) -> Acknowledgement:
        check_sha(sha, field="acknowledged commit")
        _check_why(why, "acknowledgement reason", "say why main moved outside the queue")
        check_text(actor, field="actor")
        d = self._dialect
        with self.transaction() as tx:
            tx.execute(
                "INSERT INTO acknowledged_moves (sha, why, actor, at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (sha) DO NOTHING",
                (sha, d.text_in(why), d.text_in(actor), d.time_in(at)),
            )
            row = tx.rows(_ACK + " WHERE sha = ?", (sha,))[0]
        return _acknowledgement(d, row)

    def acknowledgements(self: _Host) -> list[Acknowledgement]:
        d = self._dialect
        return [_acknowledgement(d, r) for r in self._query(_ACK + " ORDER BY at, sha")]

    def approve(
        self: _Host, slug: str, sha: str, why: str, *, actor: str, at: datetime
    ) -> Approval:
        check_slug(slug)
        check_sha(sha, field="approved sha")
        _check_why(why, "approval reason", "say why the configuration change is right")
        check_text(actor, field="actor")
        d = self._dialect
        with self.transaction() as tx:
            tx.execute(
                "INSERT INTO approvals (slug, sha, why, actor, at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (slug, sha) DO NOTHING",
                (slug, sha, d.text_in(why), d.text_in(actor), d.time_in(at)),
            )
            row = tx.rows(_APPROVAL + " WHERE slug = ? AND sha = ?", (slug, sha))[0]
        return _approval(d, row)

    def approval(self: _Host, slug: str, sha: str) -> Approval | None:
        rows = self._query(_APPROVAL + " WHERE slug = ? AND sha = ?", (slug, sha))
        return _approval(self._dialect, rows[0]) if rows else None

    def approvals(self: _Host) -> list[Approval]:
        d = self._dialect
        return [_approval(d, r) for r in self._query(_APPROVAL + " ORDER BY at, slug, sha")]


def _check_why(why: str, field: str, advice: str) -> None:
    """An operator's logged word must say something: text, and not only blanks."""
    check_text(why, field=field)
    if not why.strip():
        raise InvalidInput(field, why, advice)


def _identity(d: Dialect, row: Any) -> StoreIdentity:
    return StoreIdentity(str(row[0]), str(row[1]), _time(row[2]), d.text_out(row[3]))


def _acknowledgement(d: Dialect, row: Any) -> Acknowledgement:
    return Acknowledgement(str(row[0]), d.text_out(row[1]), d.text_out(row[2]), _time(row[3]))


def _approval(d: Dialect, row: Any) -> Approval:
    return Approval(str(row[0]), str(row[1]), d.text_out(row[2]), d.text_out(row[3]), _time(row[4]))
