"""Project-wide test options (long soak and load tests run only when asked for) and the
helpers' folders on the import path."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The benches of the fault matrix (tests/test_fault_matrix.py) are the nodes the tests of each
# chapter start; their helpers live beside those tests.
for _folder in ("checks", "security", "cascade", "load"):
    sys.path.insert(0, str(Path(__file__).parent / _folder))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow",
        action="store_true",
        help="also run tests marked slow (long soak and load variants; CI runs the short ones)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow variant: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
