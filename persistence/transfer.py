"""Moving a queue to another store: every row as plain JSON, and back, on either backend.

``export_queue`` reads every table of a store (but its identity and leases:
the new store gets an id of its own, and a queue is moved only while no
integrator holds the lease) into one JSON-ready document with times as UTC
text, flags as booleans and blocked reports as their canonical JSON;
``import_queue`` writes such a document into an empty store of either backend,
ids kept, in one transaction: all of it or nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mergegate.statemachine import InvalidInput, StoreError

from .codec import dump_report, dump_time, load_report, load_time
from .dialect import Dialect
from .rows import _time
from .sqlstore import SQLStore

__all__ = ["FORMAT", "export_queue", "import_queue"]

FORMAT = "mergegate-queue"
VERSION = 1

_I, _T, _S, _B, _J = "int", "time", "text", "bool", "json"
#: Every exported table, parents before children, with its columns and their kinds.
TABLES: Mapping[str, tuple[tuple[str, str], ...]] = {
    "candidates": (
        ("id", _I), ("slug", _S), ("branch", _S), ("sha", _S), ("state", _S), ("seq", _I),
        ("submitted_at", _T), ("updated_at", _T), ("active", _B), ("queued", _B),
        ("queue_pos", _I),
    ),
    "transitions": (
        ("id", _I), ("candidate_id", _I), ("seq", _I), ("event", _S), ("source", _S),
        ("dest", _S), ("sha", _S), ("actor", _S), ("at", _T), ("reason", _S),
        ("idempotency_key", _S), ("request_digest", _S), ("lease_owner", _S), ("main_sha", _S),
        ("interrupted", _S),
    ),
    "integration_blocked_outcomes": (
        ("id", _I), ("slug", _S), ("branch", _S), ("sha", _S), ("reason", _S), ("main_sha", _S),
        ("follow_up_slug", _S), ("previous_follow_up", _S), ("status", _S),
        ("follow_up_state", _S), ("follow_up_error", _S), ("blocked_at", _T),
        ("last_blocked_at", _T), ("resumed_at", _T), ("occurrences", _I),
    ),
    "blocked_evidence": (
        ("id", _I), ("blocked_id", _I), ("number", _I), ("seq", _I), ("at", _T), ("report", _J),
    ),
    "follow_up_outbox": (
        ("id", _I), ("follow_up_slug", _S), ("blocked_id", _I), ("created_at", _T),
        ("attempts", _I), ("done_at", _T), ("last_error", _S),
    ),
    "acknowledged_moves": (("sha", _S), ("why", _S), ("actor", _S), ("at", _T)),
    "approvals": (("slug", _S), ("sha", _S), ("why", _S), ("actor", _S), ("at", _T)),
    "queue_controls": (
        ("id", _I), ("action", _S), ("actor", _S), ("at", _T), ("why", _S), ("slug", _S),
        ("requeue", _B),
    ),
    # Its times are stored as the text they were written as (checkbuilds.py).
    "check_builds": (
        ("id", _I), ("slug", _S), ("candidate_sha", _S), ("base_sha", _S), ("merge_sha", _S),
        ("check_name", _S), ("attempt", _I), ("runner", _S), ("build_id", _S), ("url", _S),
        ("state", _S), ("exit_code", _I), ("triggered_at", _S), ("finished_at", _S),
    ),
}  # fmt: skip
# Tables added after the export format's first version: an older export that
# lacks them imports as having no rows there.
_LATER = frozenset({"approvals", "queue_controls", "check_builds"})
# Columns added after it (the facts of migration 13): an older export's rows
# lack them and import with none.
_LATER_COLUMNS: Mapping[str, frozenset[str]] = {
    "transitions": frozenset({"lease_owner", "main_sha", "interrupted"}),
}
# The order of rows of the tables keyed by something else than an id.
_ORDER = {"acknowledged_moves": "sha", "approvals": "slug, sha"}
# Tables whose id the database generates: PostgreSQL must be told to take ours,
# and its sequence moved past them.
_GENERATED = ("candidates", "transitions", "integration_blocked_outcomes", "blocked_evidence",
              "follow_up_outbox", "queue_controls", "check_builds")  # fmt: skip


def _out(d: Dialect, kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == _T:
        return dump_time(_time(value))
    if kind == _B:
        return bool(value)
    if kind == _J:
        return dump_report(load_report(d.report_out(value)))
    if kind == _S:
        return d.text_out(value)
    return int(value)


def export_queue(store: SQLStore) -> dict[str, Any]:
    """Every row of ``store`` but its identity and leases, as a JSON-ready document."""
    if store.leases():
        held = store.leases()[0]
        raise StoreError(
            store.backend,
            f"the lease {held.name} is held by {held.owner}; stop the integrators (or let "
            "`mergegate recover` settle the lease) before moving the queue",
        )
    d = store._dialect
    identity = store.identity()
    tables = {}
    for table, columns in TABLES.items():
        names = ", ".join(name for name, _ in columns)
        order = _ORDER.get(table, "id")
        rows = store._query(f"SELECT {names} FROM {table} ORDER BY {order}")
        tables[table] = [
            {name: _out(d, kind, value) for (name, kind), value in zip(columns, row, strict=True)}
            for row in rows
        ]
    return {
        "format": FORMAT,
        "version": VERSION,
        "schema_version": store.schema_versions()[-1],
        "repository": identity.repository if identity else None,
        "store_id": identity.store_id if identity else None,
        "tables": tables,
    }


def _converter(d: Dialect, kind: str) -> Callable[[Any], Any]:
    def time(value: Any) -> Any:
        if not isinstance(value, str):
            raise TypeError("a time is UTC text")
        return d.time_in(load_time(value))

    def flag(value: Any) -> Any:
        if not isinstance(value, bool):
            raise TypeError("a flag is true or false")
        return d.true if value else d.false

    def text(value: Any) -> Any:
        if not isinstance(value, str):
            raise TypeError("give text")
        return d.text_in(value)

    def number(value: Any) -> Any:
        if type(value) is not int:
            raise TypeError("give an integer")
        return value

    def report(value: Any) -> Any:
        return d.report_in(load_report(value))

    return {_T: time, _B: flag, _S: text, _I: number, _J: report}[kind]


def import_queue(store: SQLStore, document: Any) -> dict[str, int]:
    """Write an exported queue into ``store``, which must hold no queue yet; rows per table.

    Raises InvalidInput for a document that is not an export this mergegate
    reads (nothing written), StoreError for a store that is not empty.
    """
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise InvalidInput("import file", "<document>", f"not a {FORMAT} export")
    if document.get("version") != VERSION:
        raise InvalidInput(
            "import file", document.get("version"), f"export version {VERSION} is the one read"
        )
    tables = document.get("tables")
    if not isinstance(tables, dict) or not set(TABLES) - _LATER <= set(tables) <= set(TABLES):
        raise InvalidInput("import file", "<tables>", f"give exactly the tables {sorted(TABLES)}")
    if store.candidates() or store.acknowledgements() or store.approvals():
        raise StoreError(
            store.backend,
            f"{getattr(store, 'where', store.backend)} already holds a queue; "
            "import into an empty store",
        )
    d = store._dialect
    pg = store.backend == "postgresql"
    counts = {}
    with store.transaction() as tx:
        for table, columns in TABLES.items():
            rows = tables.get(table, [])
            if not isinstance(rows, list):
                raise InvalidInput("import file", table, "give a list of rows")
            names = [name for name, _ in columns]
            later = _LATER_COLUMNS.get(table, frozenset())
            convert = [_converter(d, kind) for _, kind in columns]
            override = " OVERRIDING SYSTEM VALUE" if pg and table in _GENERATED else ""
            sql = (
                f"INSERT INTO {table} ({', '.join(names)}){override} "
                f"VALUES ({', '.join('?' * len(names))})"
            )
            for number, row in enumerate(rows, start=1):
                if not isinstance(row, dict) or not set(names) - later <= set(row) <= set(names):
                    raise InvalidInput("import file", f"{table} row {number}", "wrong columns")
                try:
                    values = tuple(
                        None if row.get(n) is None else c(row[n])
                        for n, c in zip(names, convert, strict=True)
                    )
                except (TypeError, ValueError, InvalidInput) as err:
                    raise InvalidInput(
                        "import file", f"{table} row {number}", str(err).split("\n")[0]
                    ) from None
                tx.execute(sql, values)
            counts[table] = len(rows)
        if pg:
            for table in _GENERATED:
                tx.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
                )
            tx.execute(
                "SELECT setval('candidates_queue_pos_seq', "
                "COALESCE((SELECT MAX(queue_pos) FROM candidates), 0) + 1, false)"
            )
    return counts
