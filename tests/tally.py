"""The reliability suite's counters, kept where the whole run (and pytest-xdist) can add them up.

The counters live in this module, not in ``tests/reliability/conftest.py``: under
pytest-xdist the controller loads only ``tests/conftest.py``, which merges each
worker's counters (sent in ``workeroutput``) and prints and writes the sum.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

#: Every figure the reliability suite reports, by name.
TALLY: Counter[str] = Counter()

#: Where a run that counted anything writes its figures.
LAST_RUN = Path(__file__).resolve().parent / "reliability" / ".last-run.json"
