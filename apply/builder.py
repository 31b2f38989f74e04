"""Building a merge: read ``main`` and the candidate, merge them, and write the merge commit.

Nothing here runs a check or writes a ref. :class:`Builder` turns a candidate
into a :class:`~mergegate.apply.built.Built` merge commit on a base (``main``,
or the previous link of a chain), or into the Blocked report of why not: the
candidate cannot be read, its branch does not contain it, the merge conflicts,
or it changes the configuration without an operator's approval
(``configguard.py``). A merge commit a CI is still checking after a restart is
reused rather than written again.

The applier makes one for each use, from its settings at that moment (see
GitApplier._builder), and moves ``main`` itself (``mainside.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

from mergegate.statemachine import (
    Blocked,
    BlockedReport,
    CandidateKey,
    Evidence,
    Reason,
    RepositoryError,
)

from .built import NULL_SHA, Built, evidence, precondition
from .catfile import CatFile
from .commitwriter import CommitWriter
from .configguard import config_change
from .errors import GitCommandFailed, GitNotFound
from .git import Git
from .plumbing import Conflict, is_ancestor, merge_trees
from .remote import Remote
from .runners import CheckRunner

__all__ = ["Builder", "Read"]


@attrs.define
class Read:
    """What one attempt starts from: ``main`` and its tree, and the candidate's commit."""

    main: str
    main_tree: str | None
    commit: str


@attrs.frozen
class Builder:
    """Builds merges onto ``main_ref``'s history in ``git``'s repository.

    ``remote`` (checked) is where a candidate's branch is looked for first;
    ``runner`` may hold a merge commit it is still checking; ``approved`` says
    whether a configuration change is approved; ``step`` is told ``("merge",
    None)`` as each merge begins. The rest are GitApplier's fields of the same name.
    """

    git: Git
    catfile: CatFile
    commits: CommitWriter
    main_ref: str
    remote: Remote | None
    require_branch_ref: bool
    runner: CheckRunner | None
    approved: Callable[[CandidateKey], bool] | None
    step: Callable[[str, str | None], None]

    def read(self, key: CandidateKey) -> Read | Blocked:
        """What an attempt starts from, or a precondition_failed block saying what is missing.

        ``main`` and the candidate must resolve to commits, and (with
        ``require_branch_ref``) the candidate's branch must contain its sha.
        """
        names = [
            f"{self.main_ref}^{{commit}}",
            f"{self.main_ref}^{{tree}}",
            f"{key.sha}^{{commit}}",
            key.sha,
            f"refs/heads/{key.branch}",
        ]
        if self.remote is not None:
            # The server's branch (fetched by sync) wins over a local one.
            names.append(self.remote.tracking(key.branch))
        try:
            main, tree, commit, obj, local, *tracked = self.catfile.lookup(*names)
        except GitNotFound:
            raise
        except RepositoryError as err:
            return precondition(NULL_SHA, f"repository {self.git.repo} is not readable: {err}")
        branch = tracked[0] if tracked and tracked[0].oid is not None else local
        if main.oid is None:
            return precondition(NULL_SHA, f"{self.main_ref} does not resolve to a commit")
        if commit.oid is None:
            what = obj.problem if obj.type is None else f"a {obj.type}, not a commit"
            return precondition(main.oid, f"candidate sha {key.sha} is {what} in {self.git.repo}")
        if self.require_branch_ref:
            if branch.oid is None:
                if self.remote is not None:
                    return precondition(
                        main.oid,
                        f"branch {key.branch} is not on remote {self.remote.name} (deleted there?) "
                        f"and refs/heads/{key.branch} does not exist",
                    )
                return precondition(main.oid, f"branch refs/heads/{key.branch} does not exist")
            # The usual case, the branch tip itself, needs no extra git process.
            if branch.oid != commit.oid and not is_ancestor(self.git, commit.oid, branch.oid):
                return precondition(
                    main.oid,
                    f"branch {branch.name} (at {branch.oid[:12]}) does not contain "
                    f"candidate sha {key.sha}",
                )
        return Read(main.oid, tree.oid, commit.oid)

    def merge(
        self, key: CandidateKey, read: Read, base: str, base_tree: str | None
    ) -> Built | Blocked:
        """Merge ``read.commit`` onto ``base`` (whose tree is ``base_tree``) and write the commit.

        A conflict, unrelated histories or an unapproved configuration change
        is a Blocked result against ``base``; nothing is run and no ref is written.
        """
        self.step("merge", None)
        try:
            merged = merge_trees(self.git, base, read.commit)
        except GitCommandFailed as err:
            if "unrelated histories" not in err.stderr:
                raise
            return precondition(
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
        commit = self.commits.write(merged.tree, (base, read.commit), message)
        return Built(base, read.commit, commit, gate=held)

    def _config_held(self, key: CandidateKey, base: str, tree: str) -> Blocked | bool:
        """``config_changed`` if the merge changes the configuration and ``key`` is not approved.

        Decided on the merge, before a commit is written or a check runs: the
        candidate's checks must not be the ones it brings (``merged.tree`` holds
        them), and the gate in force is the operator's until they approve.
        Otherwise whether it changes the configuration (approved): see Built.gate.
        """
        change = config_change(self.git, self.catfile, base, tree)
        if change is None:
            return False
        if self.approved is not None and self.approved(key):
            return True
        return Blocked(
            BlockedReport(
                Reason.CONFIG_CHANGED,
                base,
                evidence(files=change.files, diagnostic=change.diff),
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
