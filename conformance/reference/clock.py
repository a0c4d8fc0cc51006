"""Time as the node writes and reads it: RFC 3339 with an offset (ATS-API-09), China time."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

CHINA = timezone(timedelta(hours=8))

# ATS-API-09: a date, "T", a time with optional fraction, and "Z" or an explicit ±hh:mm offset.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})",
    re.ASCII,
)


def now() -> datetime:
    """The current time in China (+08:00)."""
    return datetime.now(CHINA)


def rfc3339(moment: datetime) -> str:
    """The RFC 3339 text of an aware datetime, to the millisecond, with its offset."""
    return moment.isoformat(timespec="milliseconds")


def parse_rfc3339(text: str) -> datetime | None:
    """The aware datetime of an RFC 3339 timestamp; None when the text is not one."""
    if not _RFC3339.fullmatch(text):
        return None
    try:
        parsed = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed


def period(moment: datetime) -> str:
    """The statistics period ``YYYY-MM`` of a moment, in China time (ATS §10)."""
    return moment.astimezone(CHINA).strftime("%Y-%m")


def epoch_ms() -> int:
    """The current Unix time in milliseconds."""
    return int(datetime.now(UTC).timestamp() * 1000)
