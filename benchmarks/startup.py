"""How long a ``mergegate`` command takes to start, against ``python -c pass``.

Every command is a fresh process, so the Python start-up and the imports are
paid on each call. The commands run round-robin (after one warm-up each), so
a slow patch of a shared disk hits every command alike, and each figure is the
median of ``--runs`` wall-clock timings. The target is a ratio to
``python -c pass`` measured in the same run, not a number of milliseconds:
absolute times on a shared VM move by a factor of two within an hour. The CPU
time of each process (user + system, from ``wait4``) is printed beside it: on
a loaded machine the wall clock also counts the wait for a core, CPU time
much less so. The target is for ``--version``, ``show`` and ``list``, by both.

    python benchmarks/startup.py                 # the table
    python benchmarks/startup.py --importtime 15 # plus the top imports of `show`
    python benchmarks/startup.py --write-bytecode

It builds its own scratch repository and store in a temporary folder, and
times the ``mergegate`` of the interpreter that runs it (run it with another
venv's python to time that install).

Bytecode matters more than any import: with ``PYTHONDONTWRITEBYTECODE`` set
and an editable install (the source tree has no ``__pycache__``), Python
compiles every mergegate module from source on every call. A regular
``pip install`` writes the bytecode at install time, so users do not pay that.
The script says which case it measured; ``--write-bytecode`` unsets the
variable for the commands, so the warm-up run writes the caches.
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
GATED = ("mergegate --version", "mergegate show demo", "mergegate list")

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


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Run ``argv``; its wall-clock seconds and the CPU seconds (user + system) it used."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert proc.stderr is not None
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stderr.close()
    if proc.returncode != 0:
        sys.exit(f"startup.py: {argv} exited {proc.returncode}: {stderr.decode()}")
    return elapsed, usage.ru_utime + usage.ru_stime


def _scratch(root: Path, env: dict[str, str]) -> None:
    """A repository with a ``demo`` branch one commit ahead of ``main``, submitted as ``demo``."""
    # submit resolves the branch in git (it must exist and hold the sha), so
    # the candidate is a real branch, as an operator's would be.
    for argv in (
        ["git", "init", "-q", "-b", "main", "."],
        ["git", "commit", "-q", "--allow-empty", "-m", "start"],
        ["git", "checkout", "-q", "-b", "demo"],
        ["git", "commit", "-q", "--allow-empty", "-m", "demo"],
        ["git", "checkout", "-q", "main"],
    ):
        subprocess.run(argv, cwd=root, env=env, check=True)
    sha = subprocess.run(
        ["git", "rev-parse", "demo"], cwd=root, env=env, capture_output=True, text=True, check=True
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


def _bytecode(env: dict[str, str]) -> str:
    """How the mergegate modules are loaded: from cached bytecode, or compiled each call."""
    code = (
        "import importlib.util, os, mergegate.cli.app as a, mergegate.statemachine.engine as e\n"
        "files = [a.__file__, e.__file__]\n"
        "print(sum(os.path.exists(importlib.util.cache_from_source(f)) for f in files), 2)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    cached, total = done.stdout.split()
    where = "cached" if cached == total else "NOT cached: compiled from source on every call"
    flag = "set" if env.get("PYTHONDONTWRITEBYTECODE") else "unset"
    return f"bytecode of the mergegate modules: {where} (PYTHONDONTWRITEBYTECODE {flag})"


def main() -> None:
    """Time every command round-robin and print the medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per command (default 7)")
    parser.add_argument("--importtime", type=int, default=0, metavar="N", help="print N imports")
    parser.add_argument(
        "--write-bytecode",
        action="store_true",
        help="unset PYTHONDONTWRITEBYTECODE for the commands, so the warm-up caches bytecode",
    )
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "MERGEGATE_"))}
    env.update(_GIT_ENV)
    env["NO_COLOR"] = "1"
    if args.write_bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    load = os.getloadavg()
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
        wall: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        for argv in commands.values():
            _run(argv, root, env)  # warm-up: the page cache and the .pyc files
        for _ in range(args.runs):
            for name, argv in commands.items():
                took, used = _run(argv, root, env)
                wall[name].append(took)
                cpu[name].append(used)
        base = statistics.median(wall["python -c pass"])
        base_cpu = statistics.median(cpu["python -c pass"])
        print(f"median of {args.runs} runs each, round-robin, {sys.executable}")
        print(_bytecode(env))
        print(f"load average before: {load[0]:.2f}, after: {os.getloadavg()[0]:.2f}\n")
        print("| command | wall ms | x python -c pass | CPU ms | x (CPU) | target (wall and CPU) |")
        print("|---|---|---|---|---|---|")
        failed = []
        for name in commands:
            median = statistics.median(wall[name])
            used = statistics.median(cpu[name])
            ratio = median / base
            target = ""
            if name in GATED:
                met = ratio <= TARGET_RATIO and used / base_cpu <= TARGET_RATIO
                target = f"<= {TARGET_RATIO:g}x {'met' if met else 'NOT met'}"
                if not met:
                    failed.append(name)
            print(
                f"| `{name}` | {median * 1000:.1f} | {ratio:.2f} "
                f"| {used * 1000:.1f} | {used / base_cpu:.2f} | {target} |"
            )
        if args.importtime:
            _importtime(root, env, args.importtime)
    if failed:
        print(f"\ntarget not met: {', '.join(failed)}")


if __name__ == "__main__":
    main()
