"""Fixtures for the apply tests: real repositories in temporary directories."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

from mergegate.apply import CheckSpec
from mergegate.apply.testing import TestRepo as Repo
from mergegate.apply.testing import marker_check_script

MakeRepo = Callable[..., Repo]


@pytest.fixture(scope="session")
def make_repo(tmp_path_factory: pytest.TempPathFactory) -> MakeRepo:
    """A factory of fresh, empty repositories; safe to call once per hypothesis example."""

    def make(*, bare: bool = True) -> Repo:
        return Repo.create(tmp_path_factory.mktemp("repo") / "r", bare=bare)

    return make


@pytest.fixture(scope="session")
def marker_check(tmp_path_factory: pytest.TempPathFactory) -> CheckSpec:
    """A check that fails when the merge commit's tree holds the marker file ``FAIL``."""
    script = marker_check_script(tmp_path_factory.mktemp("scripts"))
    return CheckSpec("marker", (sys.executable, str(script)), timeout=30)


@pytest.fixture
def repo(make_repo: MakeRepo) -> Repo:
    """A bare repository whose main has one commit with files a, b and c."""
    r = make_repo()
    r.commit("refs/heads/main", None, {"a": "a\n", "b": "b\n", "c": "c\n"})
    return r


def noop() -> None:
    """A heartbeat that never loses the lease."""


@pytest.fixture
def heartbeat() -> Callable[[], None]:
    """A heartbeat that never loses the lease."""
    return noop
