"""``${ENV_NAME}`` references in the YAML files the suite reads (target file, node file).

A string may hold references wholly or inside other text; each is replaced by the variable's
value, so that secrets live in the environment, not in a file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class UnsetVariable(LookupError):
    """A referenced variable is not set; ``name`` is the variable."""

    def __init__(self, name: str) -> None:
        super().__init__(f"${{{name}}} is not set in the environment")
        self.name = name


def expand(text: str, environ: Mapping[str, str]) -> str:
    """``text`` with every ``${NAME}`` replaced by ``environ[NAME]``; ``UnsetVariable`` names
    the first variable that is not set."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise UnsetVariable(name)
        return environ[name]

    return REFERENCE.sub(one, text)
