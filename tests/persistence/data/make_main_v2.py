"""Write ``main-v2.sqlite3``: a store as mergegate at schema version 2 left it.

Run once with the code of main at 448133f (schema version 2) on the import
path, not this branch's: the file is the input of the upgrade test in
``tests/persistence/test_upgrade.py``, so it must hold what the old code wrote::

    git worktree add /tmp/old 448133f
    # a folder whose mergegate/<part> entries link to /tmp/old/<part>, on PYTHONPATH
    python tests/persistence/data/make_main_v2.py tests/persistence/data/main-v2.sqlite3
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

from mergegate.persistence import SQLiteStore
from mergegate.persistence.contract import ManualClock, conflict_report
from mergegate.statemachine import CandidateKey, Engine


def main(path: Path) -> None:
    path.unlink(missing_ok=True)
    store = SQLiteStore(path)
    assert store.schema_versions() == [1, 2], store.schema_versions()
    engine = Engine(store, clock=ManualClock(), lease_ttl=timedelta(days=36500))
    for slug in ("done", "stuck", "working", "queued"):
        engine.submit(CandidateKey(slug, f"feature/{slug}", "a" * 40))
    engine.start_apply("done", owner="w0")
    engine.integrate("done", main_sha="b" * 40)
    engine.start_apply("stuck", owner="w0")
    engine.block("stuck", conflict_report("src/app.py"))
    # The lease row stays: "working" is mid-apply, under w1's lease.
    engine.start_apply("working", owner="w1")
    store.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
