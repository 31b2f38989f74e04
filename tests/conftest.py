"""Shared test configuration: hypothesis profiles and the PostgreSQL test server."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The reachable server's URL; skips (fails under CI=true) when there is none."""
    url = os.environ.get("MERGEGATE_TEST_PG", DEFAULT_PG)
    try:
        import psycopg

        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        reason = f"no PostgreSQL at MERGEGATE_TEST_PG={url}: {first}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: PostgreSQL tests must run)", pytrace=False)
        pytest.skip(reason)
    return url


settings.register_profile(
    "default", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=400, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.register_profile(
    "ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
