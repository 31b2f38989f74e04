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

Here: the applier's configuration and the order of its steps. The steps are
``builder.py`` (read, merge; the results in ``built.py``), ``localchecks.py``
and a CI's runner (check), and ``mainside.py`` (move, hold and follow ``main``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path

import attrs

from mergegate.statemachine import (
    AlreadyIntegrated,
    ApplyResult,
    Blocked,
    BlockedReport,
    CandidateKey,
    CheckResult,
    HeldMain,
    InvalidInput,
    Reason,
    RepositoryError,
)
from mergegate.statemachine._validation import check_branch, check_sha

from . import checkrefs
from .builder import Builder, Read
from .built import NULL_SHA, Built, checks_failed, evidence
from .catfile import CatFile
from .checkedout import CheckoutFinder
from .checks import CheckSpec, spec_tuple
from .commitwriter import CommitWriter
from .errors import GitCommandFailed, GitNotFound
from .fence import lock_path
from .git import NO_HOOKS, Git, Identity
from .localchecks import run_local
from .mainside import MainSide
from .plumbing import is_ancestor
from .remote import Remote
from .runners import CheckJob, CheckRunner
from .worktree import WorktreePool, cleanup_stale, scratch_root

# NULL_SHA lives in built.py; the CLI's commands still import it from here.
__all__ = ["NULL_SHA", "GitApplier"]


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
    #: Told each step as it begins: ``("read", None)`` (the candidate and ``main`` looked
    #: up), ``("merge", None)``, ``("check", name)`` (once the check's process runs),
    #: ``("move", None)``; ``mergegate run`` shows it as progress. It may raise only
    #: before ``move`` (``run``'s stop signal): nothing is written until then.
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
    _commits: CommitWriter = attrs.field(init=False)
    _worktrees: WorktreePool = attrs.field(init=False)
    #: Main's side of a move: the fence, the hold, following the remote, the checkout;
    #: its ``remote`` is the configured remote, once checked (every move of its main is fenced).
    _main: MainSide = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        check_branch(self.main_branch, field="main branch")
        self.git = Git(
            self.repo, self.identity, self.git_executable, hooks_path=self.hooks_path or NO_HOOKS
        )
        self._catfile = CatFile(self.git)
        self._commits = CommitWriter(self.git)
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
        # Made before the remote is checked, so a changed checkout is refused
        # first, as it always was; neither escapes if the check below raises.
        remote = None if self.remote is None else Remote(self.git, self.remote, self.push_timeout)
        self._main = MainSide(
            self.git,
            self._catfile,
            self._common,
            self.main_branch,
            self.main_ref,
            CheckoutFinder(self.git, self._common, self._root, self.main_ref),
            remote,
            self.lock_wait,
        )
        self._main.refuse_changed(waits=self.checkout_waits)
        if self.remote is not None:
            try:
                self.git.run("remote", "get-url", "--end-of-options", self.remote)
            except GitCommandFailed as err:
                raise InvalidInput(
                    "remote", self.remote, "configure it with `git remote add` first"
                ) from err

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
        return self._main.sha()

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
        with self._main.hold(break_stale=break_stale) as held:
            yield held

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
        return self._main.sync()

    def close(self) -> None:
        """Stop the applier's long-running git processes, remove kept worktrees.

        The applier stays usable. The processes are also stopped when the applier
        is garbage-collected.
        """
        self._catfile.close()
        self._commits.close()
        self._main.close()
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
            self._step("read", None)
            read = self._builder().read(key)
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
                        evidence(main_attempts=tuple(attempts)),
                        detail=f"{self.main_ref} moved during each of {len(attempts)} attempts",
                    )
                )

    def _attempt(
        self,
        key: CandidateKey,
        read: Read,
        heartbeat: Callable[[], None],
        attempts: tuple[str, ...],
    ) -> ApplyResult | None:
        """One try against ``read.main``; ``None`` means main moved before the swap."""
        built = self._builder().merge(key, read, read.main, read.main_tree)
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
        builder = self._builder()
        read = builder.read(key)
        if isinstance(read, Blocked):
            return read
        if base is None or base == read.main:
            return builder.merge(key, read, read.main, read.main_tree)
        check_sha(base, field="base")
        return builder.merge(key, read, base, self._catfile.lookup(f"{base}^{{tree}}")[0].oid)

    def _builder(self) -> Builder:
        # Made at each use from the fields as they are then: a session sets
        # ``runner``, and ``approved`` may be set, on an applier already made.
        return Builder(
            self.git,
            self._catfile,
            self._commits,
            self.main_ref,
            self._main.remote,
            self.require_branch_ref,
            self.runner,
            self.approved,
            self._step,
        )

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
        return self._main.move(built, heartbeat, attempts)

    def check_ready(self) -> None:
        """Raise CheckoutInUse or RepositoryBusy if ``main``'s work tree could not follow a move.

        Nothing to check where ``main`` is not checked out. ``run`` asks before it
        takes a candidate: a move into a work tree a person is editing is refused
        after the checks, which would then run again on every try while the edit lasts.
        """
        self._main.check_ready()

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
        environ = self.check_env if self.check_env is not None else os.environ
        told = partial(self._step, "check")
        return run_local(self.checks, self._worktrees, environ, key, built, tick, tick_every, told)
