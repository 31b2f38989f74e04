"""``mergegate verify`` and ``diagram``: the log and the repository checked against the
transition table, and the table drawn (with how often the log took each edge)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from mergegate.statemachine import Candidate

from .app import cli, session_of
from .errors import EXIT_OK, EXIT_UNEXPECTED
from .output import emit, fail_line
from .session import Session

if TYPE_CHECKING:
    from mergegate.apply import RepositoryViolation

__all__ = ["diagram", "verify"]


def _repository_violations(s: Session, listed: list[Candidate]) -> list[RepositoryViolation]:
    """The repository check of verify: main's mergegate merges against the integrated candidates."""
    # Imported here: `diagram` shares this module and never reads the repository.
    from mergegate.apply.audit import repository_violations  # noqa: PLC0415
    from mergegate.apply.git import Git  # noqa: PLC0415
    from mergegate.apply.plumbing import remote_main  # noqa: PLC0415

    config, repo = s.config(), s.repository()
    git = Git(repo.root)
    ref = f"refs/heads/{config.main_branch}"
    if repo.branch_sha(config.main_branch) is None:
        return []
    if config.remote is not None:
        # The remote's main is canonical; the local one may lag behind it.
        ref = remote_main(git, config.remote, ref, timeout=config.push_timeout)
    acknowledged = [a.sha for a in s.store().acknowledgements()]
    return repository_violations(git, ref, listed, s.store().log(), acknowledged)


@cli.command()
@click.pass_context
def verify(ctx: click.Context) -> int:
    """Replay every log against the table and compare with the stored state (exit 1 if not)."""
    s = session_of(ctx)
    engine, store = s.engine(), s.store()
    violations = engine.verify()
    problems = store.integrity_problems()
    listed = store.candidates()
    candidates = len(listed)
    entries = sum(1 for _ in store.log())
    repo_problems = _repository_violations(s, listed)
    ok = not violations and not problems and not repo_problems
    result = {
        "ok": ok,
        "candidates": candidates,
        "transitions": entries,
        "violations": [
            {"candidate_id": v.candidate_id, "seq": v.seq, "problem": v.problem} for v in violations
        ],
        "integrity_problems": problems,
        "repository_violations": [
            {"commit": v.commit, "candidate_sha": v.candidate_sha, "problem": v.problem}
            for v in repo_problems
        ],
    }
    if ok:
        text = f"ok: {candidates} candidate(s), {entries} log entries, no violations\n"
    else:
        text = "".join(f"VIOLATION {v}\n" for v in violations)
        text += "".join(f"INTEGRITY {p}\n" for p in problems)
        text += "".join(f"REPOSITORY {v}\n" for v in repo_problems)
    code = EXIT_OK if ok else EXIT_UNEXPECTED
    emit(s.json, s.command, result, text, code)
    if not ok:
        fail_line(
            f"verify found {len(violations) + len(problems) + len(repo_problems)} problem(s), "
            "listed on "
            "stdout; inspect them with `mergegate history SLUG` before changing anything",
        )
    return code


@cli.command()
@click.option(
    "--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True
)
@click.option("--counts", is_flag=True, help="Label each edge with how often the log took it.")
@click.pass_context
def diagram(ctx: click.Context, fmt: str, counts: bool) -> int:
    """Draw the lifecycle from the transition table."""
    from .diagram import dot, mermaid  # noqa: PLC0415  (show, list... never draw)

    s = session_of(ctx)
    taken = s.store().edge_counts() if counts else None
    text = (mermaid if fmt == "mermaid" else dot)(counts=taken)
    edges = None
    if taken is not None:
        edges = [
            {
                "source": None if src is None else src.value,
                "event": ev.value,
                "dest": dst.value,
                "count": n,
            }
            for (src, ev, dst), n in sorted(
                taken.items(), key=lambda i: (i[0][0] or "", i[0][1].value, i[0][2].value)
            )
        ]
    return emit(s.json, s.command, {"format": fmt, "text": text, "counts": edges}, text)
