"""Hostile input through the Python API and the command line: refused with a clear error,
nothing written, nothing outside the todos folder, and logs that stay one line per event."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mergegate.apply import CheckSpec, GitApplier
from mergegate.followups import PathOutsideTodos, roadmap_slugs
from mergegate.followups.paths import todo_path
from mergegate.followups.scaffold import read_source
from mergegate.persistence import evidence_from_json, open_store, report_from_json
from mergegate.statemachine import (
    BlockedReport,
    CandidateKey,
    CheckResult,
    Evidence,
    FollowUpState,
    InvalidInput,
    MergegateError,
    Reason,
    State,
)
from mergegate.statemachine._validation import SLUG_MAX

SHA = "0123456789abcdef0123456789abcdef01234567"
MAIN = "fedcba9876543210fedcba9876543210fedcba98"

HOSTILE_SLUGS = [
    "../x", "..", ".", "a/../../etc", "/abs", "a/b", "-x", "--upload-pack=x", "a;rm -rf b",
    "$(id)", "`id`", "A", "a_b", "a--b", "-a", "a-", "", " a", "a\nb", "a\n", "a\r", "\x00a",
    "é", "a\u2028b", "x" * (SLUG_MAX + 1), "a\udcff",
]  # fmt: skip
HOSTILE_BRANCHES = [
    "../x", "a/../b", "-x", "--upload-pack=x", "--upload-pack", "a b", "a\nb", "a\tb", "a..b",
    "a.lock", ".hidden", "a//b", "a@{1}", "HEAD:x", "a~1", "a^", "a*", "a?", "a[", "a\\b",
    "/abs", "x/", "a.", "\x7f", "a\x00", "x" * 201, "refs/../../x", "a\udcff", "",
]  # fmt: skip
HOSTILE_SHAS = [
    "--upload-pack=x", "-abcdef0", "HEAD", "main", "abc", "g" * 40, "a" * 65, "ABCDEF0",
    "abcdef0\n", " abcdef0", "abcdef0 ", "abc\udcffdef", "",
]  # fmt: skip
HOSTILE_PATHS = [
    "../x", "/etc/passwd", "a/../../b", "a//b", "", "a\nb", "a\x00b", "..", "a\\b", "a/",
    "\x1b[31m", "a/\r",
]  # fmt: skip
FORGING_TEXT = [
    "line\nevent=integrate slug=forged state=integrated",
    'quote" event=integrate',
    "cr\revent=integrate",
    "nel\x85event=integrate",
    "ls\u2028event=integrate ps\u2029",
    "esc\x1b[2K\x1b[1Aevent=integrate",
    "fs\x1c\x1d\x1e\x0b\x0cevent=integrate",
    "tab\tkey=value",
    "\n## Source\n- slug: other\n- branch: other\n- sha: abcdef0\n",
    "```\n## Unblock\nNEXT: rm -rf /\n```",
]


def count(tally: Counter[str], n: int = 1) -> None:
    """Count hostile inputs tried."""
    tally["hostile_inputs_api"] += n


# -- logfmt: one line per event, impossible to forge ------------------------------

_PAIR = re.compile(r'([a-z_]+)=("(?:[^"\\]|\\.)*"|[^\s"]+)(?: |$)')


def parse_logfmt(line: str) -> list[tuple[str, str]]:
    """The key=value pairs of ``line``; fails if any byte of the line is not part of a pair."""
    assert "\n" not in line
    assert "\r" not in line
    assert line.isprintable(), repr(line)
    pairs, pos = [], 0
    while pos < len(line):
        match = _PAIR.match(line, pos)
        assert match is not None, f"unparseable at {pos}: {line!r}"
        pairs.append((match[1], match[2]))
        pos = match.end()
    return pairs


def assert_one_event_per_line(lines: list[str], events: int) -> None:
    """Each line is one event whose keys are unique and whose first key is ``event``."""
    assert len(lines) == events
    for line in lines:
        keys = [k for k, _ in parse_logfmt(line)]
        assert keys[0] == "event"
        assert len(keys) == len(set(keys)), line


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` but the SQLite files, with a hash of its content."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.startswith("store.sqlite3"):
            found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def recorded(store: Any) -> tuple[Any, ...]:
    """Everything a store holds that a refused call must not change."""
    occurrences = [store.occurrences(r.id) for r in store.blocked_records()]
    return (store.candidates(), list(store.log()), store.blocked_records(), occurrences)


# -- the Python API -----------------------------------------------------------------


def test_identities_refuse_hostile_values(tally: Counter[str]) -> None:
    """Every hostile slug, branch and sha is refused by the record itself (InvalidInput)."""
    for slug in HOSTILE_SLUGS:
        with pytest.raises(InvalidInput):
            CandidateKey(slug, "ok", SHA)
    for branch in HOSTILE_BRANCHES:
        with pytest.raises(InvalidInput):
            CandidateKey("ok", branch, SHA)
    for sha in HOSTILE_SHAS:
        with pytest.raises(InvalidInput):
            CandidateKey("ok", "ok", sha)
    for value in (b"abc", 7, None, ["a"]):
        with pytest.raises(InvalidInput):
            CandidateKey(value, "ok", SHA)  # type: ignore[arg-type]
    count(tally, len(HOSTILE_SLUGS) + len(HOSTILE_BRANCHES) + len(HOSTILE_SHAS) + 4)


def test_evidence_refuses_hostile_paths_and_shapes(tally: Counter[str]) -> None:
    """Traversing paths, a lone string for a list, lone surrogates: refused, never split or cut."""
    for path in HOSTILE_PATHS:
        for field in ("conflicted_paths", "files"):
            with pytest.raises(InvalidInput):
                Evidence(**{field: (path,)})
    for field, value in (
        ("conflicted_paths", "src/a.py"),
        ("files", "ab"),
        ("main_attempts", MAIN),
        ("checks", "x"),
    ):
        with pytest.raises(InvalidInput, match="not a single string"):
            Evidence(**{field: value})
    with pytest.raises(InvalidInput):
        Evidence(diagnostic="bad \udcff")
    with pytest.raises(InvalidInput):
        BlockedReport(Reason.EXTERNAL, MAIN, detail="bad \ud800")
    with pytest.raises(InvalidInput):
        CheckResult("two\nlines", 1)
    with pytest.raises(ValueError, match="nope"):
        BlockedReport("nope", MAIN)  # type: ignore[arg-type]
    count(tally, 2 * len(HOSTILE_PATHS) + 8)


MALFORMED_JSON = [
    "{", "[]", "null", "NaN", '"text"', "", "\x00", '{"conflicted_paths": "abc"}',
    '{"files": ["../x"]}', '{"files": ["/etc/passwd"]}', '{"bogus": 1}', '{"diagnostic": 5}',
    '{"checks": "abc"}', '{"checks": [{"name": "x", "exit_code": "1"}]}',
    '{"checks": [{"name": "a\\nb", "exit_code": 1}]}', '{"lease_since": "yesterday"}',
    '{"main_attempts": ["zz"]}', '{"diagnostic": "\\ud800"}', '{"files": {"a": 1}}',
    '{"checks": [{"name": "x", "exit_code": 1e400}]}', "[" * 100_000 + "]" * 100_000,
]  # fmt: skip


def test_malformed_evidence_json_is_refused(tally: Counter[str]) -> None:
    """Malformed or mis-shaped evidence JSON is one InvalidInput, never another exception."""
    for text in MALFORMED_JSON:
        with pytest.raises(InvalidInput):
            evidence_from_json(text)
        with pytest.raises(InvalidInput):
            report_from_json(text)
    with pytest.raises(InvalidInput):
        report_from_json(json.dumps({"reason": "bogus", "main_sha": MAIN}))
    with pytest.raises(InvalidInput):
        report_from_json('{"reason": "external", "main_sha": "--upload-pack=x"}')
    count(tally, 2 * len(MALFORMED_JSON) + 2)


HOSTILE_URLS = [
    "postgresql://u@h/db?schema=a;drop schema public",
    'postgresql://u@h/db?schema="x"',
    "postgresql://u@h/db?schema=",
    "postgresql://u@h/db?schema=a&schema=b",
    "postgresql://u@h/db?schema=1abc",
    "sqlite:",
    "sqlite://relative/path",
    "ftp://host/x",
    "   ",
    "",
]


def test_store_urls_refuse_injection(
    tally: Counter[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A schema that is not an identifier, an unknown scheme or no path: InvalidInput, no file."""
    monkeypatch.chdir(tmp_path)
    for url in HOSTILE_URLS:
        with pytest.raises(InvalidInput):
            open_store(url)
    count(tally, len(HOSTILE_URLS))
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def api(world: Any) -> Iterator[Any]:
    """A store and an Engine on the world, with a candidate ``good`` taken for apply."""
    store = world.open()
    engine = world.engine(store)
    sha = world.commit("work/good", {"files/good": "x\n"})
    engine.submit(CandidateKey("good", "work/good", sha))
    engine.start_apply("good", owner="test")
    yield store, engine
    store.close()


def test_engine_calls_with_hostile_slugs_write_nothing(
    world: Any, api: Any, tally: Counter[str], tmp_path: Path
) -> None:
    """Every Engine call given a hostile slug raises InvalidInput and writes nothing anywhere."""
    store, engine = api
    report = BlockedReport(Reason.EXTERNAL, MAIN, Evidence(diagnostic="d"))
    before, files = recorded(store), tree(tmp_path)
    for slug in HOSTILE_SLUGS:
        calls = [
            lambda s=slug: engine.get(s),
            lambda s=slug: engine.start_apply(s, owner="x"),
            lambda s=slug: engine.block(s, report),
            lambda s=slug: engine.start_remediation(s),
            lambda s=slug: engine.resume(s, force_reason="r"),
            lambda s=slug: engine.integrate(s, main_sha=MAIN),
        ]
        for call in calls:
            with pytest.raises(InvalidInput):
                call()
            count(tally)
    for actor in ("a\udcff", "\ud800"):
        with pytest.raises(InvalidInput):
            world.engine(store, actor=actor).block("good", report)
        with pytest.raises(InvalidInput):
            engine.submit(CandidateKey("other", "other", SHA), actor=actor)
        count(tally, 2)
    for sha in HOSTILE_SHAS:
        with pytest.raises(InvalidInput):
            engine.integrate("good", main_sha=sha)
        with pytest.raises(InvalidInput):
            engine.recover(sha)
        count(tally, 2)
    assert recorded(store) == before
    assert tree(tmp_path) == files


def test_git_never_reads_a_value_as_an_option(
    world: Any, tally: Counter[str], tmp_path: Path
) -> None:
    """Option-like names are refused by the applier, or reach git only as data."""
    for name in ("--upload-pack=touch pwned", "-x", "--exec=id"):
        with pytest.raises(InvalidInput):
            GitApplier(world.repo, main_branch=name)
        with pytest.raises(InvalidInput):
            GitApplier(world.repo, remote=name)
        count(tally, 2)
    with pytest.raises(InvalidInput):
        CheckSpec("c", ("a\x00b",))
    # A valid branch whose component looks like an option: git sees it only as a ref name.
    store = world.open()
    engine = world.engine(store)
    branch = "x/--upload-pack=touch pwned".replace(" ", "-")
    sha = world.commit(branch, {"files/opt": "x\n"})
    engine.submit(CandidateKey("opt", branch, sha))
    out = engine.apply("opt", GitApplier(world.repo), owner="test")
    count(tally, 2)
    assert out.state is State.INTEGRATED
    assert not list(tmp_path.rglob("pwned*"))
    store.close()


def test_control_characters_cannot_forge_the_todo_or_guidance(
    world: Any, api: Any, tally: Counter[str]
) -> None:
    """Text posing as a Source section or a NEXT: line changes neither linkage nor guidance."""
    store, engine = api
    for text in FORGING_TEXT:
        report = BlockedReport(Reason.EXTERNAL, MAIN, Evidence(diagnostic=text), detail=text)
        engine.block("good", report)
        count(tally, 2)
    key = engine.get("good").key
    record = store.blocked_record(key)
    assert record is not None
    assert record.occurrences == len(FORGING_TEXT)
    assert read_source(todo_path(world.todos, record.follow_up_slug)) == key
    assert roadmap_slugs(world.todos / "roadmap.yaml") == [record.follow_up_slug]
    guidance = engine.show("good").guidance
    assert guidance is not None
    assert guidance.text.count("\n") == 1 + len(guidance.facts) + len(guidance.next_commands)
    assert len(guidance.facts) == 4
    assert all("rm -rf" not in c for c in guidance.next_commands)


def test_log_lines_stay_one_per_event(world: Any, api: Any, tally: Counter[str]) -> None:
    """The logfmt lines of hostile moves parse as one event each, with unique keys."""
    store, engine = api
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("mergegate.transitions")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    events = 0
    try:
        for text in FORGING_TEXT:
            report = BlockedReport(Reason.EXTERNAL, MAIN, Evidence(diagnostic=text), detail=text)
            engine.block("good", report)
            engine.start_remediation("good")
            engine.resume("good", force_reason=text)
            engine.start_apply("good", owner=text)
            events += 4
            count(tally, 3)
        world.engine(store, actor=FORGING_TEXT[0]).block(
            "good", BlockedReport(Reason.EXTERNAL, MAIN, detail="x")
        )
        events += 1
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)
    assert_one_event_per_line(stream.getvalue().splitlines(), events)


def test_megabyte_evidence_is_capped_with_a_marker(
    world: Any, api: Any, tally: Counter[str]
) -> None:
    """A megabyte of detail, diagnostic and check output is stored capped, with a visible marker."""
    store, engine = api
    big = "y" * 1_000_000 + "THE-END"
    report = BlockedReport(
        Reason.CHECKS_FAILED,
        MAIN,
        Evidence(diagnostic=big, checks=(CheckResult("pytest", 1, big),)),
        detail=big,
    )
    count(tally, 3)
    out = engine.block("good", report)
    assert out.blocked is not None
    assert out.blocked.follow_up_state is FollowUpState.CREATED
    [stored] = store.occurrences(out.blocked.id)
    assert "more characters cut" in (stored.report.detail or "")
    assert "more characters cut" in (stored.report.evidence.diagnostic or "")
    tail = stored.report.evidence.checks[0].output_tail
    assert tail.startswith("[... mergegate:")
    assert tail.endswith("THE-END")
    assert len(stored.report.detail or "") < 5000
    text = (todo_path(world.todos, out.blocked.follow_up_slug) / "input.md").read_text()
    assert len(text) < 50_000
    assert "characters cut" in text


def test_slug_at_the_length_limit_goes_end_to_end(
    world: Any, tally: Counter[str], tmp_path: Path
) -> None:
    """A 64-character slug is blocked, gets its todo and roadmap entry, resumes and integrates."""
    store = world.open()
    engine = world.engine(store)
    slug = "a" * (SLUG_MAX - 2) + "-b"
    branch = "b" * 190 + "/c"
    sha = world.commit(branch, {"FAIL": "x\n"})
    engine.submit(CandidateKey(slug, branch, sha))
    check = CheckSpec("marker", (sys.executable, "-c", "import os; exit(os.path.exists('FAIL'))"))
    out = engine.apply(slug, GitApplier(world.repo, checks=(check,)), owner="test")
    count(tally, 2)
    assert out.state is State.BLOCKED
    assert out.blocked is not None
    assert out.blocked.follow_up_state is FollowUpState.CREATED
    assert read_source(world.todos / out.blocked.follow_up_slug) == out.candidate.key
    assert roadmap_slugs(world.todos / "roadmap.yaml") == [out.blocked.follow_up_slug]
    engine.start_remediation(slug)
    fixed = world.commit(branch, {"files/fixed": "x\n"})
    engine.resume(slug, new_sha=fixed, force_reason="fixed")
    assert engine.apply(slug, GitApplier(world.repo), owner="test").state is State.INTEGRATED
    with pytest.raises(InvalidInput):
        CandidateKey(slug + "c", branch, sha)
    store.close()


def test_todo_symlink_pointing_outside_is_refused(
    world: Any, api: Any, tally: Counter[str], tmp_path: Path
) -> None:
    """A follow-up folder that is a symlink out of todos: FAILED with PathOutsideTodos, no write."""
    _store, engine = api
    outside = tmp_path / "outside"
    outside.mkdir()
    world.todos.mkdir()
    key = engine.get("good").key
    (world.todos / f"good-integration-blocked-{key.sha[:7]}").symlink_to(outside)
    out = engine.block("good", BlockedReport(Reason.EXTERNAL, MAIN, detail="x"))
    count(tally)
    assert out.blocked is not None
    assert out.blocked.follow_up_state is FollowUpState.FAILED
    assert PathOutsideTodos.__name__ in (out.blocked.follow_up_error or "")
    assert list(outside.iterdir()) == []
    with pytest.raises(MergegateError):
        todo_path(world.todos, "../outside")


# -- the command line -----------------------------------------------------------------


class Cli:
    """``python -m mergegate.cli`` on the world's bare repository and a SQLite store."""

    def __init__(self, world: Any, db: Path) -> None:
        self.world = world
        self.db = db
        self.base = [sys.executable, "-m", "mergegate.cli", "--db", str(db)]
        self.base += ["--repo", str(world.repo)]

    def run(
        self, *args: str | bytes, stdin: bytes | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MERGEGATE_")}
        argv = [a if isinstance(a, bytes) else a.encode("utf-8", "surrogateescape") for a in args]
        done = subprocess.run(
            [*(a.encode() for a in self.base), *argv],
            input=stdin or b"",
            capture_output=True,
            env=env,
            timeout=60,
            check=False,
        )
        return subprocess.CompletedProcess(
            done.args,
            done.returncode,
            done.stdout.decode("utf-8", "replace"),
            done.stderr.decode("utf-8", "replace"),
        )

    def log_lines(self) -> list[str]:
        log = self.world.repo / "mergegate" / "mergegate.log"
        return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


@pytest.fixture
def cli(make_world: Any, tmp_path: Path) -> Cli:
    """A CLI on a fresh SQLite store, with ``good`` submitted and started."""
    world = make_world(f"sqlite://{tmp_path / 'store.sqlite3'}")
    runner = Cli(world, tmp_path / "store.sqlite3")
    assert runner.run("init").returncode == 0
    sha = world.commit("work/good", {"files/good": "x\n"})
    assert runner.run("submit", "good", "--sha", sha, "--branch", "work/good").returncode == 0
    assert runner.run("start", "good").returncode == 0
    return runner


def refused(cli: Cli, tmp_path: Path, tally: Counter[str], *args: Any, stdin: bytes = b"") -> None:
    """``args`` exits 2 with one clean error line and changes no file and no record."""
    store = open_store(str(cli.db))
    before = recorded(store)
    files = tree(tmp_path)
    done = cli.run(*args, stdin=stdin)
    tally["hostile_inputs_cli"] += 1
    assert done.returncode == 2, (args, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("mergegate: error: ")
    assert recorded(store) == before
    assert tree(tmp_path) == files
    store.close()


def run_cli_names(cli: Cli, tmp_path: Path, tally: Counter[str], step: int) -> None:
    sha = cli.world.main()
    for slug in HOSTILE_SLUGS[::step]:
        if "\x00" in slug:
            continue  # argv cannot carry a NUL byte
        refused(cli, tmp_path, tally, "submit", "--sha", sha, "--", slug)
        refused(cli, tmp_path, tally, "show", "--", slug)
        refused(cli, tmp_path, tally, "resume", "--force", "--why", "x", "--", slug)
    for branch in HOSTILE_BRANCHES[::step]:
        if "\x00" in branch:
            continue
        refused(cli, tmp_path, tally, "submit", "other", "--sha", sha, f"--branch={branch}")
    for bad in HOSTILE_SHAS[::step]:
        refused(cli, tmp_path, tally, "submit", "other", f"--sha={bad}")
        refused(cli, tmp_path, tally, "integrate", "good", f"--main-sha={bad}")
    refused(cli, tmp_path, tally, "submit", b"\xff\xfe", "--sha", sha)
    refused(cli, tmp_path, tally, "--actor", b"\xff", "submit", "other", "--sha", sha)
    refused(cli, tmp_path, tally, "--actor", "a\nevent=integrate", "submit", "other", "--sha", sha)
    refused(cli, tmp_path, tally, "history", "good", "--since", b"\xff")
    refused(cli, tmp_path, tally, "block", "good", "--reason", "external", "--detail", b"a\xffb")
    refused(cli, tmp_path, tally, "resume", "good", "--force", "--why", b"\xc3\x28")


def test_cli_refuses_hostile_names(cli: Cli, tmp_path: Path, tally: Counter[str]) -> None:
    """A sample of hostile slugs, branches and shas: exit 2, one line, nothing written."""
    run_cli_names(cli, tmp_path, tally, 7)


@pytest.mark.slow
def test_cli_refuses_every_hostile_name(cli: Cli, tmp_path: Path, tally: Counter[str]) -> None:
    """Every hostile slug, branch and sha on the command line: exit 2, one line, no write."""
    run_cli_names(cli, tmp_path, tally, 1)


def run_cli_evidence(cli: Cli, tmp_path: Path, tally: Counter[str], step: int) -> None:
    block = ("block", "good")
    for path in HOSTILE_PATHS[::step]:
        if "\x00" in path:
            continue
        refused(
            cli, tmp_path, tally, *block, "--reason", "merge_conflict", f"--conflict-file={path}"
        )
    refused(cli, tmp_path, tally, *block, "--reason", "merge_conflict")
    refused(cli, tmp_path, tally, *block, "--reason", "bogus")
    refused(cli, tmp_path, tally, *block, "--reason", "external", "--main-sha", "--upload-pack=x")
    evidence_dir = tmp_path / "evidence"
    evidence_dir.mkdir()
    for i, text in enumerate(MALFORMED_JSON[::step]):
        if text in ("", "null"):
            continue
        path = evidence_dir / f"e{i}.json"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        refused(cli, tmp_path, tally, *block, "--reason", "external", "--evidence-file", str(path))
        refused(cli, tmp_path, tally, *block, "--reason", "external", "--evidence-file", "-",
                stdin=text.encode("utf-8", "surrogatepass"))  # fmt: skip
    raw = evidence_dir / "latin1.json"
    raw.write_bytes(b'{"diagnostic": "caf\xe9"}')
    refused(cli, tmp_path, tally, *block, "--reason", "external", "--evidence-file", str(raw))
    huge = evidence_dir / "huge.json"
    huge.write_text(json.dumps({"diagnostic": "z" * 2_000_000}))
    refused(cli, tmp_path, tally, *block, "--reason", "external", "--evidence-file", str(huge))
    for special in ("/dev/zero", str(evidence_dir), str(evidence_dir / "missing.json")):
        refused(cli, tmp_path, tally, *block, "--reason", "external", "--evidence-file", special)
    refused(cli, tmp_path, tally, *block, "--reason", "external", "--evidence-file", "-",
            stdin=b"x" * 3_000_000)  # fmt: skip


def test_cli_refuses_hostile_evidence(cli: Cli, tmp_path: Path, tally: Counter[str]) -> None:
    """A sample of bad paths, malformed JSON, non-UTF-8, over-size and endless evidence: exit 2."""
    run_cli_evidence(cli, tmp_path, tally, 4)


@pytest.mark.slow
def test_cli_refuses_all_hostile_evidence(cli: Cli, tmp_path: Path, tally: Counter[str]) -> None:
    """Every bad path and malformed JSON of the suite as block evidence: exit 2, no write."""
    run_cli_evidence(cli, tmp_path, tally, 1)


def run_cli_text(cli: Cli, tmp_path: Path, tally: Counter[str], texts: list[str]) -> None:
    store = open_store(str(cli.db))
    lines_before, entries_before = len(cli.log_lines()), len(list(store.log()))
    for text in texts:
        for args in (
            ("block", "good", "--reason", "external", "--detail", text),
            ("remediate", "good"),
            ("resume", "good", "--force", "--why", text),
            ("start", "good"),
        ):
            done = cli.run(*args)
            assert done.returncode == 0, (args, done.stderr)
        tally["hostile_inputs_cli"] += 2
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"diagnostic": "q" * 900_000 + "\nevent=integrate"}))
    done = cli.run("block", "good", "--reason", "external", "--evidence-file", str(big))
    tally["hostile_inputs_cli"] += 1
    assert done.returncode == 0, done.stderr
    lines = cli.log_lines()[lines_before:]
    assert len(lines) == len(list(store.log())) - entries_before == 4 * len(texts) + 1
    for line in lines:
        keys = [k for k, _ in parse_logfmt(line)]
        assert keys[:2] == ["ts", "event"]
        assert len(keys) == len(set(keys)), line
    record = store.blocked_record(store.candidate("good").key)
    assert record is not None
    diagnostic = store.occurrences(record.id)[-1].report.evidence.diagnostic or ""
    assert "more characters cut" in diagnostic
    assert store.integrity_problems() == []
    store.close()


def test_cli_text_stays_one_log_line_per_event(
    cli: Cli, tmp_path: Path, tally: Counter[str]
) -> None:
    """Accepted forging text and megabyte evidence: exactly one log line per event."""
    run_cli_text(cli, tmp_path, tally, FORGING_TEXT[:3])


@pytest.mark.slow
def test_cli_every_forging_text_stays_one_log_line(
    cli: Cli, tmp_path: Path, tally: Counter[str]
) -> None:
    """Every forging text of the suite through the CLI: exactly one log line per event."""
    run_cli_text(cli, tmp_path, tally, FORGING_TEXT)


def test_cli_slug_at_the_length_limit(cli: Cli, tmp_path: Path, tally: Counter[str]) -> None:
    """A 64-character slug works end to end on the command line; 65 characters exit 2."""
    slug = "z" * SLUG_MAX
    sha = cli.world.commit("work/long", {"files/long": "x\n"})
    assert cli.run("submit", slug, "--sha", sha, "--branch", "work/long").returncode == 0
    assert cli.run("start", slug).returncode == 4  # good holds the lease
    assert cli.run("block", "good", "--reason", "external").returncode == 0
    assert cli.run("start", slug).returncode == 0
    done = cli.run("block", slug, "--reason", "external", "--detail", "long")
    tally["hostile_inputs_cli"] += 2
    assert done.returncode == 0, done.stderr
    folder = cli.world.repo / "todos" / f"{slug}-integration-blocked-{sha[:7]}"
    assert read_source(folder) is not None
    refused(cli, tmp_path, tally, "submit", slug + "z", "--sha", sha)
