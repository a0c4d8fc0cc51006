"""Where the packaged ATS data (profiles, fixtures) lives."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

_PACKAGE = Path(__file__).resolve().parent


def data_dir(name: Literal["profiles", "fixtures"]) -> Path:
    """The folder holding `profiles/` or `fixtures/`, installed or in a source checkout."""
    # A wheel carries the data under conformance/_data (pyproject force-include); a source
    # checkout or an editable install reads the repository's top-level folders.
    installed = _PACKAGE / "_data" / name
    if installed.is_dir():
        return installed
    return _PACKAGE.parent / name
