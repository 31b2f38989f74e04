"""Test helpers for downstream suites: hypothesis strategies and a stateful harness.

Install with ``pip install mergegate[testing]``. See docs/testing-harness.md.
"""

from . import harness, strategies
from .harness import ApplierStateMachine, RecordingApplier

__all__ = ["ApplierStateMachine", "RecordingApplier", "harness", "strategies"]
