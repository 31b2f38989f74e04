"""``mergegate init``: create or upgrade the store and bind it to the repository."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import click

from .app import cli, session_of
from .output import emit

__all__ = ["init"]


@runtime_checkable
class _Versioned(Protocol):
    """A store that reports its applied migrations (both shipped stores do)."""

    def schema_versions(self) -> list[int]: ...


@cli.command()
@click.pass_context
def init(ctx: click.Context) -> int:
    """Create or upgrade the store. Idempotent."""
    s = session_of(ctx)
    config = s.config()
    store = s.store(create=True)
    versions = store.schema_versions() if isinstance(store, _Versioned) else None
    # The repository and the store are bound to each other here (or refused).
    identity = s.bind()
    result = {
        "db": s.db_shown(),
        "backend": store.backend,
        "schema_versions": versions,
        "config": config.source,
        "log_file": str(s.log_path()),
        "store_id": identity.store_id if identity else None,
        "repository_root": identity.repository if identity else None,
    }
    shown = "" if not versions else f", schema version {versions[-1]}"
    bound = (
        f"store {identity.store_id} serves this repository (root {identity.repository[:12]})"
        if identity
        else f"store not bound yet: {config.main_branch} has no commit; the first command "
        "that moves the queue binds it"
    )
    text = (
        f"store ready: {s.db_shown()} ({store.backend}{shown})\n"
        f"{bound}\n"
        f"config: {config.source or 'defaults (no mergegate.toml)'}\n"
        f"log: {s.log_path()}\n"
    )
    return emit(s.json, s.command, result, text)
