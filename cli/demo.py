"""``mergegate demo``: the whole blocked flow on a scratch repository, narrated.

Every step runs the real command line code (:func:`~.boundary.run`) against a
bare integration repository and the embedded SQLite store, exactly as an
operator would type it; only the authoring of commits happens in a clone.
"""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import subprocess
import tempfile
from pathlib import Path

import click

from mergegate.statemachine import MergegateError, RepositoryError
from mergegate.statemachine._validation import short_sha

from .app import cli, session_of
from .boundary import run
from .errors import EXIT_BLOCKED, EXIT_OK, UsageError

__all__ = ["Demo", "demo"]

_CONFIG = """\
# mergegate.toml: the configuration of this integration repository.
main_branch = "main"
todos = "todos"

[[checks]]
name = "diff-check"
argv = ["git", "diff", "--check", "HEAD^1", "HEAD"]
timeout = 60
"""
# Fixed author, committer and dates: the demo's own commits get the same shas on every run.
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "Demo Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Demo Author",
    "GIT_COMMITTER_EMAIL": "author@example.com",
    "GIT_AUTHOR_DATE": "2026-01-01T12:00:00+00:00",
    "GIT_COMMITTER_DATE": "2026-01-01T12:00:00+00:00",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "LC_ALL": "C",
}


class Demo:
    """The scratch repositories and the narrated steps."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.integration = root / "integration.git"
        self.work = root / "work"
        self.step = 0
        # Explicit --db: a MERGEGATE_DB in the caller's environment must not
        # point the demo at a real store.
        db = self.integration / "mergegate" / "mergegate.sqlite3"
        self._global = ["--repo", str(self.integration), "--db", str(db), "--actor", "demo"]

    # -- narration -----------------------------------------------------------

    def title(self, text: str) -> None:
        self.step += 1
        click.echo(f"\n=== {self.step}. {text} ===\n")

    def say(self, text: str) -> None:
        click.echo(text)

    def mergegate(self, *args: str, expect: int = EXIT_OK) -> str:
        """Run ``mergegate --repo <integration> --actor demo ARGS`` through the real CLI;
        return what it printed (it is printed too)."""
        click.echo(f"$ mergegate {shlex.join(args)}")
        out = io.StringIO()
        # Errors join the narration on stdout, so a piped demo keeps its order.
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = run([*self._global, *args])
        click.echo(out.getvalue(), nl=False)
        click.echo(f"[exit {code}]\n")
        if code != expect:
            raise UsageError(
                f"demo step `mergegate {' '.join(args)}` exited {code}, expected {expect}; "
                f"the scratch repository is kept in {self.root} for inspection"
            )
        return out.getvalue()

    # -- git -----------------------------------------------------------------

    def git(self, where: Path, *args: str) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        env.update(_GIT_ENV)
        try:
            done = subprocess.run(
                ["git", *args],
                cwd=where,
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=60,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            raise RepositoryError(str(where), f"cannot run git: {err}") from err
        if done.returncode not in (0, 1) or (done.returncode == 1 and args[0] != "merge"):
            first = next((ln for ln in done.stderr.splitlines() if ln.strip()), "no message")
            raise RepositoryError(str(where), f"`git {' '.join(args[:2])}` failed: {first}")
        return done.stdout.strip()

    def commit(self, message: str, files: dict[str, str]) -> str:
        for name, text in files.items():
            path = self.work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        self.git(self.work, "add", "--", *files)
        self.git(self.work, "commit", "-q", "-m", message)
        return self.git(self.work, "rev-parse", "HEAD")

    # -- the story -----------------------------------------------------------

    def setup(self) -> tuple[str, str]:
        self.title("A scratch integration repository")
        self.git(self.root, "init", "-q", "--bare", "-b", "main", str(self.integration))
        self.git(self.root, "init", "-q", "-b", "main", str(self.work))
        self.git(self.work, "remote", "add", "origin", str(self.integration))
        self.commit(
            "Initial commit",
            {
                "README.md": "# greeter\n\nPrints a greeting.\n",
                "greeting.txt": "Hello, world.\n",
            },
        )
        self.git(self.work, "push", "-q", "origin", "main")
        (self.integration / "mergegate.toml").write_text(_CONFIG, encoding="utf-8")
        self.say(f"integration repository (bare): {self.integration}")
        self.say(f"authoring clone:               {self.work}")
        self.say(f"configuration:                 {self.integration / 'mergegate.toml'}")
        self.say(
            "Every `mergegate` command below runs with --repo integration.git --actor demo,\n"
            "on the SQLite store inside it (integration.git/mergegate/mergegate.sqlite3).\n"
        )
        self.say(_CONFIG)
        self.say("Two work items branch from main and both edit greeting.txt:")
        self.git(self.work, "checkout", "-q", "-b", "add-docs", "main")
        docs = self.commit(
            "Add usage docs; end the greeting with '!'",
            {
                "docs/usage.md": "Run `greeter` to print the greeting.\n",
                "greeting.txt": "Hello, world!\n",
            },
        )
        self.git(self.work, "checkout", "-q", "-b", "new-greeting", "main")
        greeting = self.commit("Greet mergegate", {"greeting.txt": "Hello, mergegate.\n"})
        self.git(self.work, "push", "-q", "origin", "add-docs", "new-greeting")
        self.say(f"  add-docs      {short_sha(docs)}  docs/usage.md, greeting.txt")
        self.say(f"  new-greeting  {short_sha(greeting)}  greeting.txt")
        return docs, greeting

    def run(self) -> None:
        docs, greeting = self.setup()

        self.title("Create the store and submit both candidates")
        self.mergegate("init")
        self.mergegate("submit", "add-docs", "--sha", docs)
        self.mergegate("submit", "new-greeting", "--sha", greeting)
        self.mergegate("list")

        self.title("Apply in FIFO order: add-docs integrates, new-greeting conflicts")
        self.mergegate("apply")
        guidance = self.mergegate("apply", expect=EXIT_BLOCKED)
        steps = [ln[len("NEXT: ") :] for ln in guidance.splitlines() if ln.startswith("NEXT: ")]

        self.title("The follow-up todo, its roadmap entry, and the log line")
        todos = self.integration / "todos"
        folder = next(p for p in sorted(todos.iterdir()) if p.is_dir())
        self.say(f"$ ls {folder.relative_to(self.root)}")
        self.say("\n".join(sorted(p.name for p in folder.iterdir())) + "\n")
        self.say(f"$ cat {(todos / 'roadmap.yaml').relative_to(self.root)}")
        self.say((todos / "roadmap.yaml").read_text(encoding="utf-8"))
        log = self.integration / "mergegate" / "mergegate.log"
        self.say(f"$ grep event=integration_blocked {log.relative_to(self.root)}")
        lines = log.read_text(encoding="utf-8").splitlines()
        self.say("\n".join(ln for ln in lines if "event=integration_blocked" in ln) + "\n")
        self.mergegate("show", "new-greeting")
        self.mergegate("history", "new-greeting")
        self.mergegate("blocked")

        self.title("The fix: merge main into the branch, resolve the conflict, commit, push")
        self.say("$ cd work && git checkout new-greeting")
        self.say("$ git fetch origin && git merge origin/main     # conflicts in greeting.txt")
        self.git(self.work, "fetch", "-q", "origin")
        self.git(self.work, "merge", "-q", "--no-edit", "origin/main")
        self.say("$ echo 'Hello, mergegate!' > greeting.txt && git commit -am 'Merge main; ...'")
        fixed = self.commit(
            "Merge main; keep the new greeting",
            {
                "greeting.txt": "Hello, mergegate!\n",
            },
        )
        self.say("$ git push origin new-greeting")
        self.git(self.work, "push", "-q", "origin", "new-greeting")
        self.say(f"new-greeting is now at {short_sha(fixed)} (main merged, conflict resolved)\n")

        self.title("Follow the guidance: every NEXT line of the blocked apply, verbatim")
        for step in steps:
            words = shlex.split(step)
            if words[:1] != ["mergegate"]:
                raise UsageError(f"demo guidance line {step!r} is not a mergegate command")
            self.mergegate(*words[1:])

        self.title("new-greeting is integrated")
        self.mergegate("show", "new-greeting")
        self.mergegate("history", "new-greeting")
        self.mergegate("verify")
        self.mergegate("diagram", "--counts")
        self.say(f"The scratch repositories are kept in {self.root}; remove them when done.")
        self.say("Next: docs/operator-procedure.md walks through the same flow for real incidents.")


def _scratch(directory: Path | None) -> Path:
    if directory is None:
        return Path(tempfile.mkdtemp(prefix="mergegate-demo-"))
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise UsageError(f"--dir {directory} exists and is not empty; choose another or remove it")
    directory.mkdir(parents=True, exist_ok=True)
    return directory.resolve()


@cli.command("demo")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to build the scratch repositories (default: a new temporary folder).",
)
@click.pass_context
def demo(ctx: click.Context, directory: Path | None) -> int:
    """Run the whole blocked flow on a scratch repository, narrated step by step."""
    if session_of(ctx).json:
        raise UsageError("demo prints a narrated session; run it without --json")
    root = _scratch(directory)
    try:
        Demo(root).run()
    except (OSError, StopIteration) as err:
        raise MergegateError(f"the demo failed in {root}: {err}") from err
    return EXIT_OK
