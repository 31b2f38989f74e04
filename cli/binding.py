"""One store per repository: ``init`` binds the pair, every command that moves the queue checks it.

The repository records its store's id in its git config (``mergegate.store-id``,
with where the store was, ``mergegate.store``, for the message); the store
records the repository it serves, by the root commit of ``main``'s
first-parent history, which every clone of one project shares (a second
integrator host clones the server and binds to the same store). A command that
would move ``main`` with a store the repository does not name, or with a store
that serves another project, is refused with one line naming both and the
command that fixes it: pointing ``MERGEGATE_DB`` elsewhere never starts a
second queue. A pair neither side of which is bound yet (a store made before
binding existed, or a repository whose ``main`` had no commit at ``init``) is
bound by the first command that needs it, as ``init`` would.
"""

from __future__ import annotations

from datetime import UTC, datetime

from mergegate.statemachine import Store
from mergegate.statemachine.ledger import StoreIdentity

from .errors import UsageError
from .repo import Repository, _git

__all__ = [
    "STORE_ID_KEY",
    "STORE_WHERE_KEY",
    "StoreMismatch",
    "bind",
    "other_store",
    "rebind",
    "recorded_store",
    "root_commit",
]

STORE_ID_KEY = "mergegate.store-id"
STORE_WHERE_KEY = "mergegate.store"


class StoreMismatch(UsageError):
    """The repository and the store in use do not belong together; nothing was written."""

    repository_store: str | None
    store_id: str | None

    def __init__(self, message: str, *, repository_store: str | None, store_id: str | None) -> None:
        super().__init__(message, repository_store=repository_store, store_id=store_id)


def root_commit(repo: Repository, main_branch: str) -> str | None:
    """The root commit of ``main``'s first-parent history; ``None`` while ``main`` has no commit."""
    done = _git(
        repo.root,
        "rev-list",
        "--first-parent",
        "--max-parents=0",
        "--end-of-options",
        f"refs/heads/{main_branch}",
        "--",
        ok=(0, 128),
    )
    lines = done.stdout.split()
    return lines[-1] if done.returncode == 0 and lines else None


def recorded_store(repo: Repository) -> tuple[str | None, str | None]:
    """The store id and place the repository's git config records, if any."""

    def get(key: str) -> str | None:
        done = _git(repo.root, "config", "--local", "--get", key, ok=(0, 1))
        return done.stdout.strip() or None if done.returncode == 0 else None

    return get(STORE_ID_KEY), get(STORE_WHERE_KEY)


def _record(repo: Repository, identity: StoreIdentity, where: str) -> None:
    _git(repo.root, "config", "--local", STORE_ID_KEY, identity.store_id)
    _git(repo.root, "config", "--local", STORE_WHERE_KEY, where)


def bind(
    repo: Repository,
    main_branch: str,
    store: Store,
    where: str,
    actor: str,
    *,
    recorded_as: str | None = None,
) -> StoreIdentity | None:
    """Check that ``repo`` and ``store`` belong together, binding what is unbound.

    ``where`` names the store in messages; ``recorded_as`` (default: ``where``)
    is what the repository's config records of it.

    Returns the store's identity (``None`` while ``main`` has no commit and the
    store is unbound: nothing can be moved yet). Raises StoreMismatch.
    """
    recorded, recorded_where = recorded_store(repo)
    identity = store.identity()
    if identity is not None and recorded == identity.store_id:
        return identity  # bound to each other: the root matched when the pair was made
    root = root_commit(repo, main_branch)
    if recorded is not None and (identity is None or identity.store_id != recorded):
        raise other_store(recorded, recorded_where, where, identity)
    if identity is not None and root is not None and identity.repository != root:
        raise _other_project(identity, where, root)
    if root is None:
        return identity
    if identity is None:
        identity = store.bind_repository(root, actor=actor, at=datetime.now(UTC))
        if identity.repository != root:  # another host bound it first, to another project
            raise _other_project(identity, where, root)
    if recorded is None:
        _record(repo, identity, recorded_as or where)
    return identity


def other_store(
    recorded: str,
    recorded_where: str | None,
    where: str,
    identity: StoreIdentity | None,
    *,
    missing: bool = False,
) -> StoreMismatch:
    """The refusal of a store other than the one the repository records.

    ``missing``: no store exists at ``where`` yet (a SQLite path with no file).
    """
    if missing:
        mine = "no store exists there"
    else:
        mine = f"store {identity.store_id[:12]}" if identity else "a store bound to no repository"
    return StoreMismatch(
        f"refused: this repository belongs to store {recorded[:12]} "
        f"({recorded_where or 'place not recorded'}), but the store in use is {where} "
        f"({mine}); point --db or MERGEGATE_DB back at its store, or move the queue with "
        "`mergegate export FILE` on the old store and `mergegate import FILE` on this one",
        repository_store=recorded,
        store_id=identity.store_id if identity else None,
    )


def _other_project(identity: StoreIdentity, where: str, root: str) -> StoreMismatch:
    return StoreMismatch(
        f"refused: the store at {where} (store {identity.store_id[:12]}) serves the repository "
        f"whose root commit is {identity.repository[:12]}, not this one ({root[:12]}); give this "
        "repository its own store with --db or MERGEGATE_DB and run `mergegate init`",
        repository_store=None,
        store_id=identity.store_id,
    )


def rebind(repo: Repository, identity: StoreIdentity, where: str) -> None:
    """Point the repository at ``identity``'s store: the last step of ``mergegate import``."""
    _record(repo, identity, where)
