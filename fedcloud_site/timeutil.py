"""Timezone-aware UTC time helpers: nothing here depends on the host's TZ."""

from __future__ import annotations

import calendar
from datetime import date, datetime, timezone
from typing import Any, Tuple


def utcnow() -> datetime:
    """Now, aware, in UTC."""
    return datetime.now(timezone.utc)


def parse_time(value: Any) -> datetime:
    """An aware UTC datetime from ISO 8601 text, a datetime/date, or epoch seconds.

    Naive values are taken as UTC (as OpenStack and the APEL server do).
    """
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, (int, float)):
        try:
            return datetime.fromtimestamp(value, tz=timezone.utc)
        except (OverflowError, OSError, ValueError) as exc:  # out of range for time_t or for datetime
            raise ValueError(f"not a time: epoch {value!r} is out of range") from exc
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith("Z") or text.endswith("z"):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"not an ISO 8601 time: {value!r}") from exc
    else:
        raise ValueError(f"not a time: {value!r}")
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=timezone.utc)
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError as exc:  # "0001-01-01T00:00+01:00" is before year 1 in UTC
        raise ValueError(f"not a time: {value!r} is out of range once converted to UTC") from exc


def to_epoch(moment: datetime) -> int:
    """UNIX epoch seconds of an aware datetime (never uses the local timezone)."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime given where an aware UTC time is required")
    return calendar.timegm(moment.astimezone(timezone.utc).utctimetuple())


def iso_utc(moment: datetime) -> str:
    """``2026-01-31T12:00:00Z``."""
    return moment.astimezone(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def month_start(moment: datetime) -> datetime:
    """First instant of the month of ``moment`` (UTC)."""
    m = moment.astimezone(timezone.utc)
    return datetime(m.year, m.month, 1, tzinfo=timezone.utc)


def next_month(moment: datetime) -> datetime:
    """First instant of the month after the month of ``moment`` (UTC)."""
    m = month_start(moment)
    return datetime(m.year + (m.month // 12), m.month % 12 + 1, 1, tzinfo=timezone.utc)


def parse_month(text: str) -> Tuple[int, int]:
    """``2026-01`` -> (2026, 1)."""
    try:
        year, month = (int(part) for part in text.split("-"))
    except ValueError as exc:
        raise ValueError(f"expected a month as YYYY-MM, got {text!r}") from exc
    if not 1 <= month <= 12:
        raise ValueError(f"expected a month as YYYY-MM, got {text!r}")
    return year, month
