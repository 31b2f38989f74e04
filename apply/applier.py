"""GitApplier: integrate one candidate into ``main`` of a real git repository.

The steps, each a single git command: read ``main`` and the candidate, merge
with ``git merge-tree`` (no checkout is touched), write the merge commit, run
the checks in a scratch worktree, then move ``main`` under the fence: take
git's lock on ``main`` (expecting the ``main`` the merge was made on), check the
lease while holding it, push if there is a remote, and commit the update. Only
that commit can move ``main``, and only to a commit that passed.

With a remote, its ``main`` is canonical: the push is one atomic push of
``main`` and the fence ref the server checks (``remote.py``), a failed push is
decided by asking the remote, an outside push is followed (local ``main``
fast-forwarded, the attempt made again), and recovery advances the fence
before it reads the remote's ``main``.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import attrs

from mergegate.statemachine import (
    AlreadyIntegrated,
    ApplyResult,
    Blocked,
    BlockedReport,
    CandidateKey,
    CheckResult,
    Evidence,
    HeldMain,
    Integrated,
    InvalidInput,
    Reason,
    RepositoryError,
)
from mergegate.statemachine._validation import check_branch, check_sha

from . import checkrefs
from .catfile import CatFile
from .checkedout import CheckoutFinder
from .checkout import checkout_problem, update_checkout
from .checks import CheckSpec, run_retrying, spec_tuple
from .configguard import config_change
from .errors import (
    CheckoutInUse,
    GitCommandFailed,
    GitNotFound,
    MainCheckedOut,
    RepositoryBusy,
)
from .fence import MainLock, Moved, holding, lock_path, take_main_waiting
from .fenced_push import push_fenced
from .git import NO_HOOKS, Git, Identity
from .plumbing import Conflict, commit_tree, is_ancestor, merge_trees
from .remote import FENCE_TRIES, Remote
from .runners import CheckJob, CheckRunner
from .worktree import WorktreePool, cleanup_stale, scratch_root

__all__ = ["NULL_SHA", "Built", "GitApplier", "checks_failed"]

#: The ``main_sha`` of a blocked report when ``main`` itself could not be read.
NULL_SHA = "0" * 40


def _retries(_i: object, _a: object, value: int) -> None:
    if not isinstance(value, int) or value < 0:
        raise InvalidInput("max_main_retries", value, "give an integer of 0 or more")


def _remote(_i: object, _a: object, value: str | None) -> None:
    if value is None:
        return
    if not value or value.startswith("-") or any(ord(c) < 0x21 or c == "\x7f" for c in value):
        raise InvalidInput("remote", value, "give the name of a configured git remote")


def _seconds(_i: object, a: attrs.Attribute[float], value: float) -> None:
    if not isinstance(value, int | float) or not value > 0:
        raise InvalidInput(a.name, value, "give a positive number of seconds")


def _specs(_i: object, _a: object, value: tuple[object, ...]) -> None:
    for spec in value:
        if not isinstance(spec, CheckSpec):
            raise InvalidInput("checks", spec, "give CheckSpec values")


def _path(value: str | os.PathLike[str]) -> Path:
    return Path(value).resolve()


def _evidence(**fields: Any) -> Evidence:
    # Evidence's tuple converters type as Iterable[_T_co] under mypy's attrs
    # plugin; going through **fields keeps the call checked at runtime only.
    return Evidence(**fields)


def _busy(repo: Path, err: GitCommandFailed) -> RepositoryBusy | None:
    """The lock another git process holds, if that is why ``err``'s command failed."""
    found = re.search(r"Unable to create '([^']+\.lock)': File exists", err.stderr)
    return None if found is None else RepositoryBusy(str(repo), found[1], err.stderr)


def _precondition(main: str, diagnostic: str) -> Blocked:
    return Blocked(BlockedReport(Reason.PRECONDITION_FAILED, main, Evidence(diagnostic=diagnostic)))


@attrs.frozen
class Built:
    """A merge commit made, not yet checked: ``commit`` merges ``candidate`` onto ``base``.

    ``already`` marks a candidate that ``base`` already contains: then ``commit``
    is ``base`` itself, there is nothing to check and nothing to move.
    """

    base: str
    candidate: str
    commit: str
    already: bool = False
    #: The merge changes the configuration (approved): candidates after it are to be
    #: checked by the new one, so a chain builds nothing on it (see chain.py).
    gate: bool = False


def checks_failed(
    key: CandidateKey, built: Built, results: Sequence[CheckResult]
) -> Blocked | None:
    """The Blocked result of ``results`` if one of them failed, else ``None``.

    A CI's check (one with a build URL) that never started or never finished
    before its deadline blocks as ``checks_timed_out``; a local check killed
    at its timeout stays ``checks_failed``, as it always was.
    """
    failed = [r for r in results if r.failed]
    if not failed:
        return None
    first = failed[0]
    if first.timed_out and first.url is not None:
        reason, what = Reason.CHECKS_TIMED_OUT, "timed out"
    else:
        reason, what = Reason.CHECKS_FAILED, "failed"
    return Blocked(
        BlockedReport(
            reason,
            built.base,
            _evidence(checks=tuple(results)),
            detail=f"check {first.name!r} {what} on the merge of {key}",
        )
    )


@attrs.define
class _Read:
    """What one attempt starts from: ``main`` and its tree, and the candidate's commit."""

    main: str
    main_tree: str | None
    commit: str


@attrs.define
class GitApplier:
    """Integrates candidates into ``refs/heads/<main_branch>`` of ``repo``.

    Raises at construction (RepositoryError) if ``repo`` is not a git
    repository, git is missing, or ``main_branch`` is checked out in a working
    tree with changes (MainCheckedOut). Where ``main`` is checked out in a clean
    work tree, a move updates that work tree too, under the fence, by the rule of
    git's ``receive.denyCurrentBranch=updateInstead`` (see ``checkout.py``).
    """

    repo: Path = attrs.field(converter=_path)
    main_branch: str = attrs.field(default="main", kw_only=True)
    checks: Sequence[CheckSpec] = attrs.field(
        default=(), converter=spec_tuple, validator=_specs, kw_only=True
    )
    max_main_retries: int = attrs.field(default=2, validator=_retries, kw_only=True)
    remote: str | None = attrs.field(default=None, validator=_remote, kw_only=True)
    identity: Identity = attrs.field(default=Identity(), kw_only=True)
    git_executable: str = attrs.field(default="git", kw_only=True)
    require_branch_ref: bool = attrs.field(default=True, kw_only=True)
    push_timeout: float = attrs.field(default=120.0, validator=_seconds, kw_only=True)
    heartbeat_every: float = attrs.field(default=30.0, validator=_seconds, kw_only=True)
    check_env: Mapping[str, str] | None = attrs.field(default=None, kw_only=True)
    hooks_path: str | None = attrs.field(default=None, kw_only=True)
    lock_wait: float = attrs.field(default=5.0, validator=_seconds, kw_only=True)
    #: Told each step as it begins: ``("merge", None)``, ``("check", name)`` (once the
    #: check's process runs), ``("move", None)``; ``mergegate run`` shows it as progress.
    #: It must not raise.
    on_step: Callable[[str, str | None], None] | None = attrs.field(default=None, kw_only=True)
    #: Where the checks run instead of ``checks`` (a CI, see runners.py); ``None``: locally.
    runner: CheckRunner | None = attrs.field(default=None, kw_only=True)
    #: Whether an operator approved this candidate, at its exact sha, changing the
    #: configuration (``Store.approval``); ``None``: no change is approved, so every
    #: candidate that changes it is held as ``config_changed`` (see configguard.py).
    approved: Callable[[CandidateKey], bool] | None = attrs.field(default=None, kw_only=True)
    #: A checked-out ``main`` with changes is not refused when the applier is made
    #: (MainCheckedOut): the caller waits for it through :meth:`check_ready`. For a
    #: long-lived integrator (``run``), which a person's edit must not stop.
    checkout_waits: bool = attrs.field(default=False, kw_only=True)
    git: Git = attrs.field(init=False)
    _root: Path = attrs.field(init=False)
    _common: Path = attrs.field(init=False)
    _catfile: CatFile = attrs.field(init=False)
    _worktrees: WorktreePool = attrs.field(init=False)
    _checkouts: CheckoutFinder = attrs.field(init=False)
    #: The configured remote, once checked: every move of its main is fenced.
    _remote: Remote | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        check_branch(self.main_branch, field="main branch")
        self.git = Git(
            self.repo, self.identity, self.git_executable, hooks_path=self.hooks_path or NO_HOOKS
        )
        self._catfile = CatFile(self.git)
        try:
            common = self.git.run("rev-parse", "--path-format=absolute", "--git-common-dir").text
        except GitNotFound:
            raise
        except RepositoryError as err:
            raise RepositoryError(
                str(self.repo),
                "is not a readable git repository; give the path of a bare repository "
                "or of an integration clone",
            ) from err
        self._common = Path(common).resolve()
        self._root = scratch_root(self._common)
        self._worktrees = WorktreePool(self.git, self._root)
        self._checkouts = CheckoutFinder(self.git, self._common, self._root, self.main_ref)
        checkout = self._main_checkout()
        if checkout is not None:
            try:
                problem = checkout_problem(checkout)
            except RepositoryBusy:
                # Held for a moment by a person's git: the move checks it
                # again under the lock, and waits then if it must.
                problem = None
            if problem is not None and not self.checkout_waits:
                raise MainCheckedOut(str(self.repo), str(checkout.repo), self.main_branch, problem)
        if self.remote is not None:
            try:
                self.git.run("remote", "get-url", "--end-of-options", self.remote)
            except GitCommandFailed as err:
                raise InvalidInput(
                    "remote", self.remote, "configure it with `git remote add` first"
                ) from err
            self._remote = Remote(self.git, self.remote, self.push_timeout)

    @property
    def has_checks(self) -> bool:
        """Whether a merge commit is checked before ``main`` moves (locally or on a CI)."""
        return bool(self.checks) or self.runner is not None

    @property
    def main_ref(self) -> str:
        """The full name of the branch this applier moves."""
        return f"refs/heads/{self.main_branch}"

    @property
    def main_lock(self) -> Path:
        """git's lock file on ``main``: while it exists, a move (or a recovery) holds ``main``."""
        return lock_path(self._common, self.main_ref)

    def main_sha(self) -> str:
        """The commit ``main`` points at now; raises RepositoryError if it does not resolve."""
        found = self._catfile.lookup(f"{self.main_ref}^{{commit}}")[0]
        if found.oid is None:
            raise RepositoryError(
                str(self.repo), f"{self.main_ref} does not resolve to a commit; create it first"
            )
        return found.oid

    def contains(self, sha: str, within: str | None = None) -> bool:
        """Whether ``within`` (default: ``main`` now) contains the commit ``sha``.

        Pass it to ``Engine.recover``, with ``within`` the sha :meth:`hold_main`
        yielded. An unknown sha is not contained. Raises RepositoryError if
        ``main`` does not resolve.
        """
        check_sha(sha)
        main = within if within is not None else self.main_sha()
        found = self._catfile.lookup(f"{sha}^{{commit}}")[0].oid
        return found is not None and is_ancestor(self.git, found, main)

    @contextlib.contextmanager
    def hold_main(self, *, break_stale: bool = False) -> Iterator[HeldMain]:
        """Hold ``main`` still for recovery; yield the canonical ``main`` (the remote's, if set).

        ``main`` is held by git's own lock, the one every apply takes to move it,
        so no apply moves ``main`` (locally, or on the remote) until the block
        exits. Raises MoveInFlight if a mover holds it now. With ``break_stale``
        (pass it only when no lease is live), the lock of a dead mover on this
        host is removed first and named in ``HeldMain.stale_lock``.
        """
        main = self.main_sha()
        with holding(self.git, self._common, self.main_ref, main, break_stale=break_stale) as (
            _lock,
            removed,
        ):
            canonical = main
            if self._remote is not None:
                # The fence first: once it moved, no push a dead or stalled
                # mover prepared can land (the server refuses its old token),
                # so the remote's main read after it is final for the decision.
                self._remote.advance_fence("recovery", self.main_ref)
                canonical = self._remote.fetch_main(self.main_ref)
            yield HeldMain(canonical, None if removed is None else str(removed))

    def sync(self) -> str | None:
        """With a remote: fetch its branches and bring local ``main`` up to the remote's.

        Every branch of the remote is fetched into ``refs/remotes/<remote>/*``
        (pruned: a branch deleted on the server goes), so a fix a developer
        pushed is seen. Local ``main`` is fast-forwarded to the remote's under
        git's lock on it (an outside push is a moved main, not a block).
        Returns ``main``'s sha. Raises RemoteUnreachable, or RepositoryError if
        the remote's ``main`` was rewound behind local ``main``. Without a
        remote there is nothing to fetch: it returns ``None`` and reads nothing,
        so a ``main`` with no commit yet is the apply's to report ("nothing to
        apply"), not an error here.
        """
        if self._remote is None:
            return None
        self._remote.fetch_all()
        tracked = self._catfile.lookup(f"{self._remote.tracking(self.main_branch)}^{{commit}}")
        remote_main = tracked[0].oid
        if remote_main is None:
            raise RepositoryError(
                str(self.repo),
                f"remote {self.remote} has no {self.main_ref}; push it there first "
                f"(git push {self.remote} {self.main_branch})",
            )
        return self._follow(remote_main)

    def _follow(self, remote_main: str) -> str:
        """Fast-forward local ``main`` to ``remote_main`` under git's lock; return main after."""
        for _ in range(FENCE_TRIES):
            local = self.main_sha()
            if local == remote_main:
                return local
            if not is_ancestor(self.git, local, remote_main):
                raise RepositoryError(
                    str(self.repo),
                    f"remote {self.remote}'s {self.main_ref} ({remote_main[:12]}) does not contain "
                    f"the integration clone's {self.main_ref} ({local[:12]}): it was rewound or "
                    "rewritten outside mergegate, which only moves main forward; restore it "
                    f"(git push {self.remote} {local}:{self.main_ref}) or reset this clone's "
                    "main to it by hand, then run again",
                )
            lock = take_main_waiting(
                self.git, self._common, self.main_ref, local, remote_main, wait=self.lock_wait
            )
            if isinstance(lock, Moved):
                continue
            if not isinstance(lock, MainLock):
                raise GitCommandFailed(str(self.repo), ("update-ref", "--stdin"), 128, lock.stderr)
            with lock:
                checkout = self._main_checkout()
                if checkout is not None:
                    stopped = self._update_checkout(checkout, local, remote_main)
                    if stopped is not None:
                        raise RepositoryError(
                            str(self.repo), stopped.report.evidence.diagnostic or "refused"
                        )
                lock.commit()
            return remote_main
        raise RepositoryError(
            str(self.repo), f"{self.main_ref} kept moving while it was brought up to the remote's"
        )

    def close(self) -> None:
        """Stop the applier's long-running ``git cat-file``, remove kept worktrees.

        The applier stays usable. The process is also stopped when the applier
        is garbage-collected.
        """
        self._catfile.close()
        self._worktrees.drain()

    def reusing_worktrees(self) -> contextlib.AbstractContextManager[None]:
        """Keep scratch worktrees from one check to the next until this ends (a chain, a run).

        Each is reset and cleaned before it is used again (see WorktreePool),
        and all are removed when the outermost such block ends. A killed
        process's are removed by :meth:`cleanup_stale`, like any other.
        """
        return self._worktrees.reusing()

    def __enter__(self) -> GitApplier:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def cleanup_stale(self) -> list[Path]:
        """Remove scratch worktrees left by killed applies; return their paths."""
        return cleanup_stale(self.git, self._root)

    def apply(self, key: CandidateKey, heartbeat: Callable[[], None]) -> ApplyResult:
        """Integrate ``key`` into ``main``, or say why not. See the module docstring.

        ``main`` moves only when the result is :class:`Integrated`. If
        ``heartbeat`` raises, the exception propagates and ``main`` is untouched.
        Raises RepositoryError only when git itself fails unexpectedly.
        """
        attempts: list[str] = []
        while True:
            read = self._read(key)
            if isinstance(read, Blocked):
                return read
            attempts.append(read.main)
            heartbeat()
            result = self._attempt(key, read, heartbeat, tuple(attempts))
            if result is not None:
                return result
            if len(attempts) > self.max_main_retries:
                return Blocked(
                    BlockedReport(
                        Reason.MAIN_MOVED,
                        read.main,
                        _evidence(main_attempts=tuple(attempts)),
                        detail=f"{self.main_ref} moved during each of {len(attempts)} attempts",
                    )
                )

    def _read(self, key: CandidateKey) -> _Read | Blocked:
        names = [
            f"{self.main_ref}^{{commit}}",
            f"{self.main_ref}^{{tree}}",
            f"{key.sha}^{{commit}}",
            key.sha,
            f"refs/heads/{key.branch}",
        ]
        if self._remote is not None:
            # The server's branch (fetched by sync) wins over a local one.
            names.append(self._remote.tracking(key.branch))
        try:
            main, tree, commit, obj, local, *tracked = self._catfile.lookup(*names)
        except GitNotFound:
            raise
        except RepositoryError as err:
            return _precondition(NULL_SHA, f"repository {self.repo} is not readable: {err}")
        branch = tracked[0] if tracked and tracked[0].oid is not None else local
        if main.oid is None:
            return _precondition(NULL_SHA, f"{self.main_ref} does not resolve to a commit")
        if commit.oid is None:
            what = obj.problem if obj.type is None else f"a {obj.type}, not a commit"
            return _precondition(main.oid, f"candidate sha {key.sha} is {what} in {self.repo}")
        if self.require_branch_ref:
            if branch.oid is None:
                if self._remote is not None:
                    return _precondition(
                        main.oid,
                        f"branch {key.branch} is not on remote {self.remote} (deleted there?) "
                        f"and refs/heads/{key.branch} does not exist",
                    )
                return _precondition(main.oid, f"branch refs/heads/{key.branch} does not exist")
            # The usual case, the branch tip itself, needs no extra git process.
            if branch.oid != commit.oid and not is_ancestor(self.git, commit.oid, branch.oid):
                return _precondition(
                    main.oid,
                    f"branch {branch.name} (at {branch.oid[:12]}) does not contain "
                    f"candidate sha {key.sha}",
                )
        return _Read(main.oid, tree.oid, commit.oid)

    def _attempt(
        self,
        key: CandidateKey,
        read: _Read,
        heartbeat: Callable[[], None],
        attempts: tuple[str, ...],
    ) -> ApplyResult | None:
        """One try against ``read.main``; ``None`` means main moved before the swap."""
        built = self._build(key, read, read.main, read.main_tree)
        if not isinstance(built, Built):
            return built
        if built.already:
            return AlreadyIntegrated(read.main)
        if self.has_checks:
            heartbeat()
            results = self.run_checks(key, built, heartbeat, self.heartbeat_every)
            failed = checks_failed(key, built, results)
            if failed is not None:
                return failed
        heartbeat()
        return self.move(built, heartbeat, attempts)

    def build(self, key: CandidateKey, base: str | None = None) -> Built | Blocked:
        """Merge ``key`` onto ``base`` (default: ``main`` now) and write the merge commit.

        Nothing is run and no ref is written: this is one link of a speculative
        chain when ``base`` is the previous link's commit. A conflict, or a
        candidate that cannot be read, is a Blocked result against ``base``.
        """
        read = self._read(key)
        if isinstance(read, Blocked):
            return read
        if base is None or base == read.main:
            return self._build(key, read, read.main, read.main_tree)
        check_sha(base, field="base")
        return self._build(key, read, base, self._catfile.lookup(f"{base}^{{tree}}")[0].oid)

    def _build(
        self, key: CandidateKey, read: _Read, base: str, base_tree: str | None
    ) -> Built | Blocked:
        self._step("merge", None)
        try:
            merged = merge_trees(self.git, base, read.commit)
        except GitCommandFailed as err:
            if "unrelated histories" not in err.stderr:
                raise
            return _precondition(
                base, f"candidate sha {key.sha} shares no history with {self.main_ref}"
            )
        if isinstance(merged, Conflict):
            return Blocked(
                BlockedReport(
                    Reason.MERGE_CONFLICT,
                    base,
                    Evidence(conflicted_paths=merged.paths),
                    detail=f"{len(merged.paths)} conflicted path(s) merging {key}",
                )
            )
        # Only a merge that changes nothing can be an ancestor; asking git only
        # then keeps the common path at one process fewer.
        if merged.tree == base_tree and is_ancestor(self.git, read.commit, base):
            return Built(base, read.commit, base, already=True)
        held = self._config_held(key, base, merged.tree)
        if isinstance(held, Blocked):
            return held
        resumed = self._resumed(key, base, read.commit, merged.tree)
        if resumed is not None:
            return Built(base, read.commit, resumed, gate=held)
        message = (
            f"mergegate: integrate {key.slug} ({key.branch}@{read.commit[:7]})\n\n"
            f"Candidate: {read.commit}\n"
        )
        commit = commit_tree(self.git, merged.tree, (base, read.commit), message)
        return Built(base, read.commit, commit, gate=held)

    def _config_held(self, key: CandidateKey, base: str, tree: str) -> Blocked | bool:
        """``config_changed`` if the merge changes the configuration and ``key`` is not approved.

        Decided on the merge, before a commit is written or a check runs: the
        candidate's checks must not be the ones it brings (``merged.tree`` holds
        them), and the gate in force is the operator's until they approve.
        Otherwise whether it changes the configuration (approved): see Built.gate.
        """
        change = config_change(self.git, self._catfile, base, tree)
        if change is None:
            return False
        if self.approved is not None and self.approved(key):
            return True
        return Blocked(
            BlockedReport(
                Reason.CONFIG_CHANGED,
                base,
                _evidence(files=change.files, diagnostic=change.diff),
                detail=(
                    f"{key} changes the configuration ({', '.join(change.files)}); held for "
                    f"an operator's approval of {key.sha}"
                ),
            )
        )

    def _resumed(self, key: CandidateKey, base: str, candidate: str, tree: str) -> str | None:
        """The merge commit a CI is still checking for this merge (an integrator restarted).

        Reused only if it is exactly this merge (same tree, parents ``base`` and
        the candidate), so waiting on its builds checks what would be moved.
        """
        if self.runner is None:
            return None
        found = self.runner.resumable(key, base)
        if found is None:
            return None
        shown = self.git.run("show", "-s", "--format=%T %P", found, ok=(0, 128)).text.split()
        return found if shown == [tree, base, candidate] else None

    def publish(self, commit: str) -> str:
        """Push ``commit`` to the remote as ``refs/mergegate/checks/<commit>`` (checkrefs.py)."""
        if self.remote is None:
            raise InvalidInput("remote", None, "checks on a CI need a remote the CI fetches from")
        return checkrefs.publish(self.git, self.remote, commit, self.push_timeout)

    def retract(self, ref: str) -> None:
        """Delete a published check ref from the remote (its checks reached a verdict)."""
        if self.remote is not None:
            checkrefs.retract(self.git, self.remote, [ref], self.push_timeout)

    def move(
        self, built: Built, heartbeat: Callable[[], None], attempts: tuple[str, ...] = ()
    ) -> ApplyResult | None:
        """The fence: move ``main`` from ``built.base`` to ``built.commit`` only under a live lease.

        Returns ``None`` when ``main`` is no longer at ``built.base`` (nothing
        moved), Blocked when a remote refused the push, else Integrated.

        git's lock on ``main`` is taken first; the lease is checked while it is
        held, and the push (with a remote) runs while it is still held, so
        recovery (which takes the same lock) can never decide in between.
        """
        self._step("move", None)
        base, commit = built.base, built.commit
        lock = take_main_waiting(
            self.git, self._common, self.main_ref, base, commit, wait=self.lock_wait
        )
        if isinstance(lock, Moved):
            return None
        if not isinstance(lock, MainLock):
            # Another process holds git's lock on main: the host's, not the candidate's, problem.
            raise RepositoryBusy(
                str(self.repo), str(lock_path(self._common, self.main_ref)), lock.stderr
            )
        with lock:
            # Raises LeaseHeld if recovery took the lease: the lock is aborted
            # on the way out, and main stays where it was.
            heartbeat()
            # Looked up under the lock: no checkout of main can start unseen now.
            checkout = self._main_checkout()
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
            if self._remote is not None:
                pushed = push_fenced(self._remote, self.main_ref, base, commit, heartbeat)
                if isinstance(pushed, Blocked):
                    return pushed
                if pushed is None:
                    moved_to = self._remote.fetch_main(self.main_ref)
                    lock.abort()
                    # Outside the lock: following takes it again, as an update.
                    self._follow(moved_to)
                    return None
                if checkout is not None:
                    # The remote's main has moved: the move stands whatever the
                    # work tree does, so a failure here only leaves it behind.
                    with contextlib.suppress(GitCommandFailed):
                        update_checkout(checkout, base, commit)
            lock.commit()
        return Integrated(commit, base, attempts or (base,))

    def _main_checkout(self) -> Git | None:
        """git in the work tree where ``main`` is checked out now, if there is one.

        Looked up at each use, not once: a person switches branches in their
        clone while ``run`` lives beside them all day, and a work tree that
        checked ``main`` out after the applier was made must follow a move too
        (else its index and files would show the move reversed).
        """
        where = self._checkouts.find()
        if where is None:
            return None
        return Git(
            where, self.identity, self.git_executable, hooks_path=self.hooks_path or NO_HOOKS
        )

    def check_ready(self) -> None:
        """Raise CheckoutInUse or RepositoryBusy if ``main``'s work tree could not follow a move.

        Nothing to check where ``main`` is not checked out. ``run`` asks before it
        takes a candidate: a move into a work tree a person is editing is refused
        after the checks, which would then run again on every try while the edit lasts.
        """
        checkout = self._main_checkout()
        if checkout is not None:
            self._checkout_ready(checkout)

    def _checkout_ready(self, checkout: Git) -> None:
        """Raise CheckoutInUse (or RepositoryBusy) unless ``main``'s work tree can follow a move."""
        problem = checkout_problem(checkout)
        if problem is not None:
            raise CheckoutInUse(str(self.repo), str(checkout.repo), self.main_branch, problem)

    def _checkout_refusal(self, where: Path, problem: str) -> str:
        return (
            f"{self.main_ref} is checked out in {where} and {problem}; "
            "commit or stash there, then retry"
        )

    def _update_checkout(self, checkout: Git, old: str, new: str) -> Blocked | None:
        """Bring the checked-out work tree to ``new`` before ``main`` moves; else refuse.

        Before the ref: if ``read-tree`` refuses, nothing was written and the
        lock is aborted, so main and the work tree both stay at ``old``.
        """
        try:
            update_checkout(checkout, old, new)
        except GitCommandFailed as err:
            busy = _busy(self.repo, err)
            if busy is not None:
                # A person's `git status` or an IDE holds the index for a moment:
                # nothing moved, and the candidate is not at fault.
                raise busy from None
            first = err.stderr.strip().splitlines()[0] if err.stderr.strip() else "refused"
            return _precondition(
                old, self._checkout_refusal(checkout.repo, f"git read-tree refused: {first}")
            )
        return None

    def _step(self, step: str, detail: str | None) -> None:
        if self.on_step is not None:
            self.on_step(step, detail)

    def run_checks(
        self,
        key: CandidateKey,
        built: Built,
        tick: Callable[[], None],
        tick_every: float,
    ) -> tuple[CheckResult, ...]:
        """The checks' verdict on ``built.commit``: the runner's if one is set, else the local one.

        ``tick`` is called while they run; if it raises, they are stopped (a
        CI's builds cancelled) and the exception propagates.
        """
        if self.runner is None:
            return self.run_local_checks(key, built, tick, tick_every)
        job = CheckJob(
            key,
            built.base,
            built.candidate,
            built.commit,
            lambda: self.publish(built.commit),
            retract=self.retract,
        )
        return self.runner.run(job, tick, tick_every)

    def run_local_checks(
        self,
        key: CandidateKey,
        built: Built,
        tick: Callable[[], None],
        tick_every: float,
    ) -> tuple[CheckResult, ...]:
        """Run the checks on ``built.commit`` in a scratch worktree, stopping at the first failure.

        ``tick`` is called between checks and every ``tick_every`` seconds while
        one runs; if it raises, the running check is killed, the worktree
        removed, and the exception propagates. Safe to call from several threads.
        """
        base = self.check_env if self.check_env is not None else os.environ
        env = {k: v for k, v in base.items() if not k.startswith("GIT_")}
        env.update(
            MERGEGATE_SLUG=key.slug,
            MERGEGATE_CANDIDATE_SHA=built.candidate,
            MERGEGATE_MAIN_SHA=built.base,
            MERGEGATE_MERGE_SHA=built.commit,
        )
        results: list[CheckResult] = []
        with self._worktrees.worktree(built.commit) as path:
            for spec in self.checks:
                # Told once the check runs: a stop signal let through by the step
                # (``mergegate run``) raised inside Popen would orphan the check.
                told = partial(self._step, "check", spec.name)
                result = run_retrying(spec, path, env, tick, tick_every, started=told)
                results.append(result)
                if result.failed:
                    # Later checks ran against a tree already known to be bad.
                    break
                tick()
        return tuple(results)
