"""Intake's settings: the shared ones plus the few only intake reads (same ``CUSTODY_`` prefix)."""

from __future__ import annotations

from pydantic import Field

from custody_common.settings import Settings


class IntakeSettings(Settings):
    """Settings of the intake service."""

    upload_lock_timeout: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a PATCH may go without progress before another may take its upload over.",
    )
    expiry_sweep_interval: float = Field(
        default=60.0, gt=0, description="Seconds between two looks for uploads past their expiry."
    )
    part_writers: int = Field(
        default=64, ge=1, description="Threads that write incoming parts to the object store at once."
    )
