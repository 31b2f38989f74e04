"""How long a ``mergegate`` command takes to start, against ``python -c pass``.

Every command is a fresh process, so the Python start-up and the imports are
paid on each call. The commands run round-robin (after one warm-up each), so
a slow patch of a shared disk hits every command alike, and each figure is the
median of ``--runs`` wall-clock timings. The target is a ratio to
``python -c pass`` measured in the same run, not a number of milliseconds:
absolute times on a shared VM move by a factor of two within an hour.

    python benchmarks/startup.py                 # the table
    python benchmarks/startup.py --importtime 15 # plus the top imports of `show`

It builds its own scratch repository and store in a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_RATIO = 6.0
GATED = ("mergegate --version", "mergegate show demo")

_GIT_ENV = {
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def _script() -> list[str]:
    """The installed console script, run by this interpreter (as its shebang would)."""
    script = Path(sys.executable).parent / "mergegate"
    if not script.exists():
        sys.exit(f"startup.py: no console script at {script}; pip install the project first")
    return [sys.executable, str(script)]


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"startup.py: {argv} exited {done.returncode}: {done.stderr.decode()}")
    return elapsed


def _scratch(root: Path, env: dict[str, str]) -> None:
    """A repository with one commit and a store holding one candidate, ``demo``."""
    for argv in (
        ["git", "init", "-q", "-b", "main", "."],
        ["git", "commit", "-q", "--allow-empty", "-m", "start"],
    ):
        subprocess.run(argv, cwd=root, env=env, check=True)
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    _run([*_script(), "init"], root, env)
    _run([*_script(), "submit", "demo", "--sha", sha], root, env)


def _importtime(root: Path, env: dict[str, str], top: int) -> None:
    """Print the ``top`` imports of ``mergegate show demo`` by cumulative time."""
    py, script = _script()
    done = subprocess.run(
        [py, "-X", "importtime", script, "show", "demo"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, self_us, cumulative_us, name = (
            part.strip() for part in line.replace(":", "|", 1).split("|")
        )
        rows.append((int(cumulative_us), int(self_us), name))
    print(f"\n`python -X importtime mergegate show demo`, top {top} by cumulative time (us):\n")
    print(f"{'cumulative':>10}  {'self':>7}  module")
    for cumulative, own, name in sorted(rows, reverse=True)[:top]:
        print(f"{cumulative:>10}  {own:>7}  {name}")
    print(f"\n{len(rows)} modules imported in all")


def main() -> None:
    """Time every command round-robin and print the medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per command (default 7)")
    parser.add_argument("--importtime", type=int, default=0, metavar="N", help="print N imports")
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "MERGEGATE_"))}
    env.update(_GIT_ENV)
    env["NO_COLOR"] = "1"
    with tempfile.TemporaryDirectory(prefix="mergegate-startup-") as tmp:
        root = Path(tmp)
        _scratch(root, env)
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "mergegate --version": [*_script(), "--version"],
            "mergegate show demo": [*_script(), "show", "demo"],
            "mergegate --json show demo": [*_script(), "--json", "show", "demo"],
            "mergegate list": [*_script(), "list"],
            "mergegate --help": [*_script(), "--help"],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for argv in commands.values():
            _run(argv, root, env)  # warm-up: the page cache and the .pyc files
        for _ in range(args.runs):
            for name, argv in commands.items():
                times[name].append(_run(argv, root, env))
        base = statistics.median(times["python -c pass"])
        print(f"median of {args.runs} runs each, round-robin, {sys.executable}\n")
        print("| command | median ms | x python -c pass | target |")
        print("|---|---|---|---|")
        failed = []
        for name, samples in times.items():
            median = statistics.median(samples)
            ratio = median / base
            target = ""
            if name in GATED:
                met = ratio <= TARGET_RATIO
                target = f"<= {TARGET_RATIO:g}x {'met' if met else 'NOT met'}"
                if not met:
                    failed.append(name)
            print(f"| `{name}` | {median * 1000:.1f} | {ratio:.2f} | {target} |")
        if args.importtime:
            _importtime(root, env, args.importtime)
    if failed:
        print(f"\ntarget not met: {', '.join(failed)}")


if __name__ == "__main__":
    main()
