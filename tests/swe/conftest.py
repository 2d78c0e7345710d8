import pytest

from iquest_core.swe.mine import mine_repository
from tests.swe.repos import mathlib_repo


@pytest.fixture(scope="session")
def mathlib(tmp_path_factory):
    """(repository path, commit ids by name, head-mode report, base-mode report)."""
    repo = tmp_path_factory.mktemp("repos") / "mathlib"
    shas = mathlib_repo(repo)
    return repo, shas, mine_repository(repo, mode="head"), mine_repository(repo, mode="base")


@pytest.fixture(scope="session")
def tasks(mathlib):
    return mathlib[2].tasks
