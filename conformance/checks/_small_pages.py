"""Small-page walks of a list (ATS-API-08): the same collection, read by pages that split it.

ATS-API-08 holds for every page size: walking all pages yields each item once. A walk by pages
of 100 alone misses a defect that shows only from page 2 on when the collection fits one page,
so lists are also read with small sizes — one that does not divide the collection and one that
does — and every page read is compared with the slice of the collection read by pages of 100.
The walk is bounded: the first ``SMALL_PAGES`` pages, the last page and the page past the end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from conformance.checks import CheckContext, Finding
from conformance.checks._expect import expect_json_object, expect_status, request_text

# Pages read from the start of each small-page walk (then the last one and one past the end).
SMALL_PAGES = 3
_MAX_SIZE = 100


def small_sizes(count: int, max_size: int = _MAX_SIZE) -> list[int]:
    """Page sizes below ``count`` that split it into several pages: first one that does not
    divide it (about three pages when it is small), then the largest one that does; [] when
    ``count`` is below 2 (nothing to split)."""
    if count < 2:
        return []
    upper = min(count - 1, max_size)
    start = max(1, min(math.ceil(count / SMALL_PAGES), upper))
    candidates = [*range(start, upper + 1), *range(start - 1, 0, -1)]
    sizes = [next((s for s in candidates if count % s), None)]
    sizes.append(next(s for s in range(upper, 0, -1) if count % s == 0))
    return list(dict.fromkeys(s for s in sizes if s is not None))


def _key(item: Any, member: str) -> str:
    value = item.get(member) if isinstance(item, dict) else item
    return value if isinstance(value, str) else repr(value)


def item_keys(items: Sequence[Any], member: str) -> list[str]:
    """The identity of each item of a page: its ``member`` (a code or an id)."""
    return [_key(item, member) for item in items]


def judge_small_pages(
    ctx: CheckContext,
    path: str,
    *,
    app: str,
    member: str,
    reference: Sequence[str],
    total: int,
    params: Sequence[tuple[str, str]] = (),
    label: str = "",
) -> list[str]:
    """Read ``path`` by small pages and raise ``Finding`` where a page is not its slice of
    ``reference`` — the keys (``item_keys``) of the collection's first items in order, read by
    pages of 100, all ``total`` of them or a prefix. Returns what was read, for the evidence."""
    what = label or path
    done: list[str] = []
    for size in small_sizes(total):
        last = math.ceil(total / size)
        numbers = sorted({*range(1, min(last, SMALL_PAGES) + 1), last, last + 1})
        for number in numbers:
            query = [*params, ("page", str(number)), ("size", str(size))]
            ex = ctx.client.request("GET", path, app=app, params=query)
            expect_status(ex, 200, what=f"page {number} of size {size} of {what}")
            body = expect_json_object(ex, what=f"a page of {what}")
            items, seen_total = body.get("items"), body.get("total")
            if not isinstance(items, list) or seen_total != total:
                raise Finding(
                    f"page {number} of size {size} of {what} answered total {seen_total!r} "
                    f"with items {type(items).__name__}; expected total {total} as read by "
                    f"pages of 100, the collection unchanged ({request_text(ex)})"
                )
            start, end = (number - 1) * size, min(number * size, total)
            got = item_keys(items, member)
            if end <= len(reference) or start >= total:
                expected = list(reference[start:end])
                if got != expected:
                    raise Finding(
                        f"page {number} of size {size} of {what} holds {_shown(got)}; expected "
                        f"{_shown(expected)}, items {start + 1}‥{end} of the {total} read by "
                        f"pages of 100 — every page size walks each item once, in order "
                        f"(ATS-API-08) ({request_text(ex)})"
                    )
            elif len(got) != end - start:
                raise Finding(
                    f"page {number} of size {size} of {what} holds {len(got)} items; expected "
                    f"{end - start}, the rest of total {total} ({request_text(ex)})"
                )
        done.append(f"size {size}: pages {', '.join(map(str, numbers))}")
    if done:
        ctx.note(f"{what} read by small pages ({'; '.join(done)}) agrees with pages of 100")
    return done


def _shown(keys: Sequence[str]) -> str:
    head = ", ".join(keys[:4])
    return f"[{head}{', …' if len(keys) > 4 else ''}] ({len(keys)} items)"
