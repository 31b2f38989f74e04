"""Test helpers for downstream suites: hypothesis strategies and a stateful harness.

Install with ``pip install mergegate[testing]``. See docs/testing-harness.md.
"""

from . import harness, strategies
from .harness import SMOKE, ApplierStateMachine, HarnessFailure, RecordingApplier, expect

__all__ = [
    "SMOKE",
    "ApplierStateMachine",
    "HarnessFailure",
    "RecordingApplier",
    "expect",
    "harness",
    "strategies",
]
