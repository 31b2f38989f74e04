"""Test helpers for downstream suites: hypothesis strategies and a stateful harness.

Install with ``pip install mergegate[testing]``.
"""

from . import strategies

__all__ = ["strategies"]
