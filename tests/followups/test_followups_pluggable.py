"""Pluggable follow-ups: a host project's own scaffold, state.yaml schema, resolver and slug
rule, wired through the one factory, keep the blocked flow, its idempotency and its guidance."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from ruamel.yaml import YAML

from mergegate.followups import (
    CODE_BLOCKED,
    FollowUpConflict,
    ScaffoldResult,
    Wiring,
    build_engine,
    drain,
)
from mergegate.persistence import SQLiteStore
from mergegate.statemachine import (
    BlockedRecord,
    BlockedReport,
    CandidateKey,
    Engine,
    FollowUpNotResolved,
    FollowUpState,
    InvalidInput,
    Outcome,
    State,
)

SHA = "0123456789abcdef0123456789abcdef01234567"
MAIN = "fedcba9876543210fedcba9876543210fedcba98"
KEY = CandidateKey("auth-login", "feature/auth-login", SHA)
HOST_SLUG = "fix-auth-login-01234567"


def _yaml() -> YAML:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    return yaml


def _load(path: Path) -> Any:
    return _yaml().load(path.read_text(encoding="utf-8"))


@attrs.frozen
class NextMachineScaffold:
    """The host's scaffold: ``brief.md`` and a schema-2 ``state.yaml`` with build and review
    phases; the folder is deleted once the candidate is delivered."""

    #: The brief is the folder's evidence: the guidance names it.
    evidence_file = "brief.md"

    def write(
        self, todos_root: Path, record: BlockedRecord, report: BlockedReport
    ) -> ScaffoldResult:
        """Write the folder atomically (temporary folder, then rename) or reuse this key's one."""
        target = todos_root / record.follow_up_slug
        todos_root.mkdir(parents=True, exist_ok=True)
        if target.exists():
            return self._reuse(target, record.key)
        key = record.key
        state = {
            "schema_version": 2,
            "todo": record.follow_up_slug,
            "source": {"slug": key.slug, "branch": key.branch, "sha": key.sha},
            "phases": {"build": {"status": "pending"}, "review": {"status": "pending"}},
        }
        tmp = Path(tempfile.mkdtemp(prefix=f".{record.follow_up_slug}.", dir=todos_root))
        try:
            with (tmp / "state.yaml").open("w", encoding="utf-8") as out:
                _yaml().dump(state, out)
            (tmp / "brief.md").write_text(
                f"# Unblock {key.slug}\n\n{report.reason.value} against {report.main_sha}\n",
                encoding="utf-8",
            )
            os.rename(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return ScaffoldResult(target, created=True)

    def _reuse(self, target: Path, key: CandidateKey) -> ScaffoldResult:
        source = _load(target / "state.yaml").get("source", {})
        if source != {"slug": key.slug, "branch": key.branch, "sha": key.sha}:
            raise FollowUpConflict(str(target), key, None)
        return ScaffoldResult(target, created=False)

    def deliver(self, todos_root: Path, record: BlockedRecord) -> None:
        """The host keeps no folder for delivered work."""
        shutil.rmtree(todos_root / record.follow_up_slug, ignore_errors=True)


@attrs.frozen
class PhasesResolver:
    """The host's rule: resolved once build is done and review is approved."""

    todos_root: Path

    def unresolved_reason(self, record: BlockedRecord) -> str | None:
        """Why the follow-up is not resolved yet, or ``None``."""
        path = self.todos_root / record.follow_up_slug / "state.yaml"
        if not path.is_file():
            return f"{path.name} of {record.follow_up_slug} is missing"
        phases = _load(path).get("phases", {})
        build, review = phases["build"]["status"], phases["review"]["status"]
        if (build, review) != ("done", "approved"):
            return f"build is {build} and review is {review}"
        return None


def host_slug(key: CandidateKey, owner: Callable[[str], CandidateKey | None]) -> str:
    """The host's slug rule: ``fix-<slug>-<sha8>``, then a numeric suffix on a collision."""
    base = f"fix-{key.slug}-{key.sha[:8]}"
    slug, n = base, 1
    while owner(slug) not in (None, key):
        n += 1
        slug = f"{base}-{n}"
    return slug


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """A fresh SQLite store file."""
    opened = SQLiteStore(tmp_path / "db.sqlite3")
    yield opened
    opened.close()


def host_wiring(todos: Path) -> Wiring:
    """The host's parts in the one factory's configuration."""
    return Wiring(
        todos,
        scaffold=NextMachineScaffold(),
        resolver=PhasesResolver(todos),
        slug_rule=host_slug,
    )


def block(engine: Engine, report: BlockedReport, key: CandidateKey = KEY, **kw: Any) -> Outcome:
    """Submit ``key``, start its apply and block it with ``report``."""
    engine.submit(key)
    engine.start_apply(key.slug, owner="integrator-1")
    return engine.block(key.slug, report, **kw)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``, relative name to bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_the_host_scaffold_runs_the_blocked_flow_to_delivery(
    store: SQLiteStore, todos: Path, conflict_report: BlockedReport
) -> None:
    """Host files under the host slug; resume waits for both phases; delivery deletes them."""
    engine = build_engine(store, host_wiring(todos))
    blocked = block(engine, conflict_report)
    assert blocked.blocked is not None
    assert blocked.blocked.follow_up_slug == HOST_SLUG
    assert blocked.blocked.follow_up_state is FollowUpState.CREATED
    folder = todos / HOST_SLUG
    assert sorted(p.name for p in folder.iterdir()) == ["brief.md", "state.yaml"]
    state = _load(folder / "state.yaml")
    assert state["schema_version"] == 2
    assert state["phases"] == {"build": {"status": "pending"}, "review": {"status": "pending"}}

    engine.start_remediation(KEY.slug)
    with pytest.raises(FollowUpNotResolved, match="build is pending and review is pending"):
        engine.resume(KEY.slug)
    state["phases"] = {"build": {"status": "done"}, "review": {"status": "approved"}}
    with (folder / "state.yaml").open("w", encoding="utf-8") as out:
        _yaml().dump(state, out)
    fixed = "4e2d3bc0a1f2e3d4c5b6a7980112233445566778"
    assert engine.resume(KEY.slug, new_sha=fixed).state is State.RETRY

    engine.start_apply(KEY.slug, owner="integrator-1")
    integrated = engine.integrate(KEY.slug, main_sha=MAIN)
    assert integrated.state is State.INTEGRATED
    assert integrated.hook_errors == ()
    assert not folder.exists()


def test_the_host_scaffold_keeps_the_flow_idempotent(
    store: SQLiteStore, todos: Path, conflict_report: BlockedReport
) -> None:
    """A replayed block, a retried keyed block and a drain leave the host's folder untouched."""
    engine = build_engine(store, host_wiring(todos))
    engine.submit(KEY)
    engine.start_apply(KEY.slug, owner="integrator-1")
    first = engine.block(KEY.slug, conflict_report, idempotency_key="block-1")
    before = snapshot(todos)
    again = engine.block(KEY.slug, conflict_report, idempotency_key="block-1")
    assert again.transition == first.transition
    replay = engine.block(KEY.slug, conflict_report)
    assert replay.blocked is not None
    assert replay.blocked.follow_up_slug == HOST_SLUG
    assert replay.blocked.occurrences == 2
    assert drain(store, host_wiring(todos).followups()).created == ()
    assert snapshot(todos) == before


def test_the_host_scaffold_keeps_the_guidance(
    tmp_path: Path, conflict_report: BlockedReport
) -> None:
    """Guidance names the host's slug and is identical for identical inputs in two stores."""
    texts = []
    for run in ("a", "b"):
        store = SQLiteStore(tmp_path / f"{run}.sqlite3")
        try:
            outcome = block(
                build_engine(store, host_wiring(tmp_path / run / "todos")), conflict_report
            )
        finally:
            store.close()
        assert outcome.guidance is not None
        texts.append(outcome.guidance)
    assert texts[0] == texts[1]
    assert texts[0].code == CODE_BLOCKED
    assert any(HOST_SLUG in fact for fact in texts[0].facts)


def test_an_explicit_follow_up_slug_per_block(
    store: SQLiteStore, todos: Path, conflict_report: BlockedReport
) -> None:
    """block(follow_up=...) names the folder; another identity asking for it writes nothing."""
    engine = build_engine(store, host_wiring(todos))
    outcome = block(engine, conflict_report, follow_up="login-outage")
    assert outcome.blocked is not None
    assert outcome.blocked.follow_up_slug == "login-outage"
    assert (todos / "login-outage" / "state.yaml").is_file()
    other = CandidateKey("signup", "feature/signup", MAIN)
    before = snapshot(todos)
    with pytest.raises(InvalidInput, match="it is the follow-up of auth-login"):
        block(engine, conflict_report, key=other, follow_up="login-outage")
    assert engine.get("signup").state is State.APPLYING
    assert snapshot(todos) == before


def test_a_follow_up_from_recovery_is_delivered_like_any(store: SQLiteStore, todos: Path) -> None:
    """recover()'s third interruption blocks it apply_interrupted; that follow-up is delivered."""
    engine = build_engine(store, host_wiring(todos))
    engine.submit(KEY)
    settled = []
    for n in range(3):
        engine.start_apply(KEY.slug, owner=f"integrator-{n}")
        # Its holder is known to be gone: recover settles the lease before it expires.
        settled += engine.recover(MAIN, abandoned=lambda lease: True)
    assert [o.state for o in settled] == [State.PENDING, State.PENDING, State.BLOCKED]
    interrupted = settled[-1]
    assert interrupted.state is State.BLOCKED
    folder = todos / HOST_SLUG
    assert (folder / "state.yaml").is_file()
    engine.start_remediation(KEY.slug)
    state = _load(folder / "state.yaml")
    state["phases"] = {"build": {"status": "done"}, "review": {"status": "approved"}}
    with (folder / "state.yaml").open("w", encoding="utf-8") as out:
        _yaml().dump(state, out)
    engine.resume(KEY.slug)
    engine.start_apply(KEY.slug, owner="integrator-2")
    integrated = engine.integrate(KEY.slug, main_sha=MAIN)
    assert integrated.hook_errors == ()
    assert not folder.exists(), "the host's deliver() was not called for the interrupt's follow-up"
