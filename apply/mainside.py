"""Main's side of a move: ``main`` moved, held and followed under git's lock, work tree and all.

:class:`MainSide` is the part of :class:`~mergegate.apply.GitApplier` that
writes ``main`` or holds it still: the fence (git's lock on ``main``, the
lease checked while it is held, the push with a remote), recovery's hold, and
following a remote's ``main`` after an outside push. Where ``main`` is checked
out in a person's work tree, that work tree follows each move under the same
lock, by the rule of ``receive.denyCurrentBranch=updateInstead`` (see
``checkout.py``), or the move is refused before anything is written.

The applier makes one in its constructor and delegates to it; nothing else
makes one. Building the merge and running the checks are the applier's.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs

from mergegate.statemachine import ApplyResult, Blocked, HeldMain, Integrated, RepositoryError

from .built import Built, precondition
from .catfile import CatFile
from .checkedout import CheckoutFinder
from .checkout import checkout_problem, update_checkout
from .errors import CheckoutInUse, GitCommandFailed, MainCheckedOut, RepositoryBusy
from .fence import MainLock, Moved, holding, lock_path, take_main_waiting
from .fenced_push import push_fenced
from .git import Git
from .plumbing import is_ancestor
from .remote import FENCE_TRIES, Remote
from .updater import Updater

__all__ = ["MainSide"]


def _busy(repo: Path, err: GitCommandFailed) -> RepositoryBusy | None:
    """The lock another git process holds, if that is why ``err``'s command failed."""
    found = re.search(r"Unable to create '([^']+\.lock)': File exists", err.stderr)
    return None if found is None else RepositoryBusy(str(repo), found[1], err.stderr)


@attrs.define
class MainSide:
    """Moves, holds and follows ``ref`` (``refs/heads/<branch>``) of ``git``'s repository.

    ``remote``, when set, is the configured remote whose ``main`` is canonical;
    ``lock_wait`` is how long a move waits for git's lock on ``main``.
    """

    git: Git
    catfile: CatFile
    common: Path
    branch: str
    ref: str
    checkouts: CheckoutFinder
    remote: Remote | None
    lock_wait: float
    #: The spare ``update-ref`` the fence's next transaction runs in (updater.py).
    _spare: Updater = attrs.field(
        init=False, default=attrs.Factory(lambda self: Updater(self.git), takes_self=True)
    )

    def close(self) -> None:
        """Stop the spare ``update-ref``; the next move starts one again."""
        self._spare.close()

    def sha(self) -> str:
        """The commit ``main`` points at now; raises RepositoryError if it does not resolve."""
        found = self.catfile.lookup(f"{self.ref}^{{commit}}")[0]
        if found.oid is None:
            raise RepositoryError(
                str(self.git.repo), f"{self.ref} does not resolve to a commit; create it first"
            )
        return found.oid

    @contextlib.contextmanager
    def hold(self, *, break_stale: bool) -> Iterator[HeldMain]:
        """GitApplier.hold_main: hold ``main`` still, yield the canonical ``main``."""
        main = self.sha()
        with holding(self.git, self.common, self.ref, main, break_stale=break_stale) as (
            _lock,
            removed,
        ):
            canonical = main
            if self.remote is not None:
                # The fence first: once it moved, no push a dead or stalled
                # mover prepared can land (the server refuses its old token),
                # so the remote's main read after it is final for the decision.
                self.remote.advance_fence("recovery", self.ref)
                canonical = self.remote.fetch_main(self.ref)
            yield HeldMain(canonical, None if removed is None else str(removed))

    def sync(self) -> str | None:
        """GitApplier.sync: fetch the remote's branches, follow its ``main``; return ``main``."""
        if self.remote is None:
            return None
        self.remote.fetch_all()
        tracked = self.catfile.lookup(f"{self.remote.tracking(self.branch)}^{{commit}}")
        remote_main = tracked[0].oid
        if remote_main is None:
            raise RepositoryError(
                str(self.git.repo),
                f"remote {self.remote.name} has no {self.ref}; push it there first "
                f"(git push {self.remote.name} {self.branch})",
            )
        return self._follow(self.remote, remote_main)

    def _follow(self, remote: Remote, remote_main: str) -> str:
        """Fast-forward local ``main`` to ``remote_main`` under git's lock; return main after."""
        for _ in range(FENCE_TRIES):
            local = self.sha()
            if local == remote_main:
                return local
            if not is_ancestor(self.git, local, remote_main):
                raise RepositoryError(
                    str(self.git.repo),
                    f"remote {remote.name}'s {self.ref} ({remote_main[:12]}) does not contain "
                    f"the integration clone's {self.ref} ({local[:12]}): it was rewound or "
                    "rewritten outside mergegate, which only moves main forward; restore it "
                    f"(git push {remote.name} {local}:{self.ref}) or reset this clone's "
                    "main to it by hand, then run again",
                )
            lock = take_main_waiting(
                self.git,
                self.common,
                self.ref,
                local,
                remote_main,
                wait=self.lock_wait,
                spare=self._spare,
            )
            if isinstance(lock, Moved):
                continue
            if not isinstance(lock, MainLock):
                raise GitCommandFailed(
                    str(self.git.repo), ("update-ref", "--stdin"), 128, lock.stderr
                )
            with lock:
                checkout = self.checkout()
                if checkout is not None:
                    stopped = self._update_checkout(checkout, local, remote_main)
                    if stopped is not None:
                        raise RepositoryError(
                            str(self.git.repo), stopped.report.evidence.diagnostic or "refused"
                        )
                lock.commit()
            return remote_main
        raise RepositoryError(
            str(self.git.repo), f"{self.ref} kept moving while it was brought up to the remote's"
        )

    def move(
        self, built: Built, heartbeat: Callable[[], None], attempts: tuple[str, ...]
    ) -> ApplyResult | None:
        """GitApplier.move: the fence, from ``built.base`` to ``built.commit`` under the lease."""
        base, commit = built.base, built.commit
        lock = take_main_waiting(
            self.git, self.common, self.ref, base, commit, wait=self.lock_wait, spare=self._spare
        )
        if isinstance(lock, Moved):
            return None
        if not isinstance(lock, MainLock):
            # Another process holds git's lock on main: the host's, not the candidate's, problem.
            raise RepositoryBusy(
                str(self.git.repo), str(lock_path(self.common, self.ref)), lock.stderr
            )
        with lock:
            # Raises LeaseHeld if recovery took the lease: the lock is aborted
            # on the way out, and main stays where it was.
            heartbeat()
            # Looked up under the lock: no checkout of main can start unseen now.
            checkout = self.checkout()
            if checkout is not None:
                # Checked again under the lock: the work tree may have changed
                # since the applier was made. Nothing has moved yet.
                # A person's edit in progress: the host's, not the candidate's (the
                # lock is aborted on the way out, and the apply is tried again).
                self._checkout_ready(checkout)
                if self.remote is None:
                    stopped = self._update_checkout(checkout, base, commit)
                    if stopped is not None:
                        return stopped
            if self.remote is not None:
                pushed = push_fenced(self.remote, self.ref, base, commit, heartbeat)
                if isinstance(pushed, Blocked):
                    return pushed
                if pushed is None:
                    moved_to = self.remote.fetch_main(self.ref)
                    lock.abort()
                    # Outside the lock: following takes it again, as an update.
                    self._follow(self.remote, moved_to)
                    return None
                if checkout is not None:
                    # The remote's main has moved: the move stands whatever the
                    # work tree does, so a failure here only leaves it behind.
                    with contextlib.suppress(GitCommandFailed):
                        update_checkout(checkout, base, commit)
            lock.commit()
        return Integrated(commit, base, attempts or (base,))

    def checkout(self) -> Git | None:
        """git in the work tree where ``main`` is checked out now, if there is one.

        Looked up at each use, not once: a person switches branches in their
        clone while ``run`` lives beside them all day, and a work tree that
        checked ``main`` out after the applier was made must follow a move too
        (else its index and files would show the move reversed).
        """
        where = self.checkouts.find()
        if where is None:
            return None
        # The applier's own identity, git and hooks, in the other work tree.
        return Git(where, self.git.identity, self.git.executable, hooks_path=self.git.hooks_path)

    def refuse_changed(self, *, waits: bool) -> None:
        """Raise MainCheckedOut if ``main``'s work tree has changes, unless the caller ``waits``.

        Asked when the applier is made; with ``waits`` the caller waits
        through :meth:`check_ready` instead (GitApplier.checkout_waits).
        """
        checkout = self.checkout()
        if checkout is not None:
            try:
                problem = checkout_problem(checkout)
            except RepositoryBusy:
                # Held for a moment by a person's git: the move checks it
                # again under the lock, and waits then if it must.
                problem = None
            if problem is not None and not waits:
                raise MainCheckedOut(str(self.git.repo), str(checkout.repo), self.branch, problem)

    def check_ready(self) -> None:
        """GitApplier.check_ready: raise unless ``main``'s work tree could follow a move."""
        checkout = self.checkout()
        if checkout is not None:
            self._checkout_ready(checkout)

    def _checkout_ready(self, checkout: Git) -> None:
        """Raise CheckoutInUse (or RepositoryBusy) unless ``main``'s work tree can follow a move."""
        problem = checkout_problem(checkout)
        if problem is not None:
            raise CheckoutInUse(str(self.git.repo), str(checkout.repo), self.branch, problem)

    def _checkout_refusal(self, where: Path, problem: str) -> str:
        return (
            f"{self.ref} is checked out in {where} and {problem}; commit or stash there, then retry"
        )

    def _update_checkout(self, checkout: Git, old: str, new: str) -> Blocked | None:
        """Bring the checked-out work tree to ``new`` before ``main`` moves; else refuse.

        Before the ref: if ``read-tree`` refuses, nothing was written and the
        lock is aborted, so main and the work tree both stay at ``old``.
        """
        try:
            update_checkout(checkout, old, new)
        except GitCommandFailed as err:
            busy = _busy(self.git.repo, err)
            if busy is not None:
                # A person's `git status` or an IDE holds the index for a moment:
                # nothing moved, and the candidate is not at fault.
                raise busy from None
            first = err.stderr.strip().splitlines()[0] if err.stderr.strip() else "refused"
            return precondition(
                old, self._checkout_refusal(checkout.repo, f"git read-tree refused: {first}")
            )
        return None
