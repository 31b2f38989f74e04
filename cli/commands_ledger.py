"""The commands of the store's ledger of its repository: acknowledge, export and import.

``acknowledge SHA --why TEXT`` logs that a commit on ``main``'s first-parent
history moved ``main`` outside the queue on purpose (a hotfix pushed to the
server, a release commit), with who and when; ``verify`` then accepts it.
``export`` and ``import`` move a queue to another store as a command, never
as a silent second queue (see ``binding.py``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mergegate.statemachine import InvalidInput
from mergegate.statemachine.ledger import Acknowledgement

from .app import cli, session_of
from .errors import UsageError
from .output import emit
from .session import Session

if TYPE_CHECKING:
    from mergegate.apply.git import Git

__all__ = ["acknowledge", "export", "import_"]


def _main_ref(s: Session) -> tuple[Git, str]:
    """Git on the repository, and the ``main`` that verify reads (the remote's, if configured)."""
    from mergegate.apply.git import Git  # noqa: PLC0415
    from mergegate.apply.plumbing import remote_main  # noqa: PLC0415

    config, repo = s.config(), s.repository()
    git = Git(repo.root)
    ref = f"refs/heads/{config.main_branch}"
    if config.remote is not None:
        ref = remote_main(git, config.remote, ref, timeout=120.0)
    return git, ref


def _shown(ack: Acknowledgement) -> str:
    return f"{ack.sha}: {ack.why} (by {ack.actor} at {ack.at.isoformat()})"


@cli.command()
@click.argument("sha")
@click.option("--why", required=True, help="Why main moved outside the queue (logged).")
@click.pass_context
def acknowledge(ctx: click.Context, sha: str, why: str) -> int:
    """Log that commit SHA on main moved it outside the queue on purpose; verify accepts it.

    SHA is a commit id or an abbreviation of at least 4 hex digits, on main's
    first-parent history. The acknowledgement is logged with who and when and
    is never changed; acknowledging the same commit again is a no-op.
    """
    from mergegate.apply import resolve_sha  # noqa: PLC0415

    s = session_of(ctx)
    if not why.strip():
        raise InvalidInput("--why", why, "say why main moved outside the queue")
    store = s.engine().store  # the engine checks that repository and store belong together
    git, ref = _main_ref(s)
    full = resolve_sha(git, sha, field="SHA")
    chain = git.run("rev-list", "--first-parent", "--end-of-options", ref, "--").text.split()
    if full not in chain:
        raise UsageError(
            f"commit {full} is not on the first-parent history of {ref}; only a commit that "
            "moved main can be acknowledged"
        )
    earlier = next((a for a in store.acknowledgements() if a.sha == full), None)
    if earlier is not None and earlier.why != why:
        raise UsageError(
            f"commit {full} was already acknowledged by {earlier.actor} at "
            f"{earlier.at.isoformat()} ({earlier.why}); the log keeps the first word"
        )
    ack = earlier or store.acknowledge(full, why, actor=s.actor, at=datetime.now(UTC))
    result = {
        "sha": ack.sha,
        "why": ack.why,
        "actor": ack.actor,
        "at": ack.at.isoformat(),
        "changed": earlier is None,
    }
    verb = "acknowledged" if earlier is None else "already acknowledged"
    return emit(s.json, s.command, result, f"{verb} {_shown(ack)}\n")


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def export(ctx: click.Context, file: Path) -> int:
    """Write this repository's whole queue to FILE (JSON), to move it to another store.

    Every candidate, log entry, blocked outcome, follow-up and acknowledged
    move is written; refused while an integrator holds the lease, and when FILE
    exists. Then run `mergegate import FILE` with the new store.
    """
    from mergegate.persistence.sqlstore import SQLStore  # noqa: PLC0415
    from mergegate.persistence.transfer import export_queue  # noqa: PLC0415

    s = session_of(ctx)
    store = s.engine().store  # the engine checks that repository and store belong together
    if not isinstance(store, SQLStore):
        raise UsageError(f"the store at {s.db_shown()} cannot export its queue")
    if file.exists():
        raise UsageError(f"{file} exists; give a new file, nothing was written")
    document = export_queue(store)
    text = json.dumps(document, sort_keys=True, indent=1, ensure_ascii=False) + "\n"
    partial = file.with_name(file.name + ".partial")
    try:
        partial.write_text(text, encoding="utf-8")
        partial.replace(file)
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise UsageError(f"cannot write {file}: {err.strerror or err}") from None
    counts = {table: len(rows) for table, rows in document["tables"].items()}
    result = {"file": str(file), "store_id": document["store_id"], "rows": counts}
    return emit(
        s.json,
        s.command,
        result,
        f"exported {counts['candidates']} candidate(s) and {counts['transitions']} log "
        f"entries to {file}; on the new store run: mergegate --db NEW_STORE import {file}\n",
    )


@cli.command("import")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.pass_context
def import_(ctx: click.Context, file: Path) -> int:
    """Move the queue exported to FILE into the store in use, which must be empty.

    The repository is then bound to this store: the old one is refused from
    now on, so the queue is never run from two stores.
    """
    from mergegate.persistence.sqlstore import SQLStore  # noqa: PLC0415
    from mergegate.persistence.transfer import (  # noqa: PLC0415
        FORMAT,
        import_queue,
    )

    from .binding import rebind, recorded_store, root_commit  # noqa: PLC0415

    s = session_of(ctx)
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UsageError(f"cannot read {file} as an export: {str(err).splitlines()[0]}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        # Checked before the store is opened: a refused import makes no store file.
        raise InvalidInput("import file", str(file), f"not a {FORMAT} export")
    repo, config = s.repository(), s.config()
    root = root_commit(repo, config.main_branch)
    exported = document.get("repository")
    if root is None or (exported is not None and exported != root):
        raise UsageError(
            f"{file} is the queue of the repository whose root commit is "
            f"{str(exported)[:12]}, not this one ({str(root)[:12]}); nothing was written"
        )
    store = s.store(create=True, moving=True)
    if not isinstance(store, SQLStore):
        raise UsageError(f"the store at {s.db_shown()} cannot import a queue")
    recorded, _ = recorded_store(repo)
    identity = store.identity()
    if identity is not None and (identity.store_id == recorded or identity.repository != root):
        raise UsageError(
            f"the store at {s.db_shown()} is already bound (store {identity.store_id[:12]}); "
            "import into a new, empty store"
        )
    counts = import_queue(store, document)
    identity = store.bind_repository(root, actor=s.actor, at=datetime.now(UTC))
    rebind(repo, identity, s.db_shown())
    result = {"file": str(file), "store_id": identity.store_id, "rows": counts}
    return emit(
        s.json,
        s.command,
        result,
        f"imported {counts['candidates']} candidate(s) and {counts['transitions']} log entries "
        f"into {s.db_shown()}; this repository now uses store {identity.store_id}, and the "
        f"old store{' ' + recorded[:12] if recorded else ''} is refused from now on "
        "(keep --db or MERGEGATE_DB pointing at the new store)\n",
    )
