"""The data variants of the reference node: its seed catalog made another conformant way.

Applied to the seed catalog before it is stored (``CatalogIndex.seed``): the population resource
made ``CONDITIONAL``, catalog summaries holding a literal ``%`` and ``_``, the unconditional
resource grown to 5 000 records. Each is a choice ATS leaves to a node
(``conformance/reference/variants.py``).
"""

from __future__ import annotations

import copy
from typing import Any

from conformance.reference.variants import VariantSet

_LARGE_RECORDS = 5000
# A summary text with a literal % and _ (ATS-CAT-04: keyword=% must then match it).
_WILDCARDS = "（覆盖率 100%，字段名 id_number）"
_CONDITION = "仅限政务服务事项办理使用 / for government service matters only"


def seed_variant(data: dict[str, Any], variants: VariantSet) -> dict[str, Any]:
    """The seed catalog ``data`` with the data variants of ``variants`` applied."""
    if not variants.names:
        return data
    data = copy.deepcopy(data)
    roles = data.get("roles") or {}
    entries = data.get("entries") or []
    if variants.on("conditional-population") and "population" in roles:
        for entry in entries:
            if entry.get("resource_code") == roles["population"]:
                entry["share"] = {**entry["share"], "type": "CONDITIONAL", "condition": _CONDITION}
    if variants.on("literal-wildcards"):
        for entry in entries[:3]:
            entry["summary"] = f"{entry['summary']}{_WILDCARDS}"
    if variants.on("large-resource") and "unconditional" in roles:
        records = data.get("records") or {}
        held = records.get(roles["unconditional"]) or []
        if held:
            records[roles["unconditional"]] = [held[i % len(held)] for i in range(_LARGE_RECORDS)]
    return data
