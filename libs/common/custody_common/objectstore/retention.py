"""Retention dates as both adapters understand them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def retain_until(until: datetime, now: datetime) -> datetime:
    """``until`` checked, in UTC, rounded up to the millisecond, the precision S3 keeps.

    Rounding up, never down, so a lock is never shorter than asked for. Raises ValueError if
    ``until`` has no time zone or is not after ``now``.
    """
    if until.tzinfo is None or until.utcoffset() is None:
        raise ValueError("retention date must carry a time zone (use UTC)")
    if until <= now:
        raise ValueError(f"retention date {until.isoformat()} is not in the future")
    spare = until.microsecond % 1000
    if spare:
        until += timedelta(microseconds=1000 - spare)
    return until.astimezone(UTC)
