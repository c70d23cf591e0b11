"""Time parsing of the simulators, written from the formats the APIs use (RFC 3339 / ISO 8601, epoch)."""

from __future__ import annotations

import calendar
from datetime import date, datetime, timezone
from typing import Any


def parse_time(value: Any) -> datetime:
    """An aware UTC datetime from ISO 8601 text (``Z`` or an offset; naive means UTC), epoch seconds, a datetime
    or a date."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        moment = datetime.fromisoformat(text)
    else:
        raise ValueError(f"not a time: {value!r}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def to_epoch(moment: datetime) -> int:
    """UNIX seconds of an aware datetime."""
    return calendar.timegm(moment.astimezone(timezone.utc).utctimetuple())
