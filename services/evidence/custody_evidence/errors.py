"""What the evidence service raises; each message says what happened and what to do."""

from __future__ import annotations

from enum import StrEnum

from custody_common.errors import CustodyError, IntegrityError


class Finding(StrEnum):
    """What differed between an item's stored bytes and what was declared or sealed."""

    HASH_MISMATCH = "hash_mismatch"
    """Every segment authenticated, but the plaintext's SHA-256 is not the declared one."""
    SIZE_MISMATCH = "size_mismatch"
    """Every segment authenticated, but the plaintext is not the declared size."""
    AUTHENTICATION_FAILED = "authentication_failed"
    """A segment was altered, moved, swapped or cut short."""
    MISSING_PART = "missing_part"
    """A stored part is not in the object store."""
    STORED_SIZE_MISMATCH = "stored_size_mismatch"
    """A stored part is not the size its plaintext size implies (truncated or extended)."""
    PARTS_INCONSISTENT = "parts_inconsistent"
    """The list of parts is not contiguous from offset 0, or names objects of another item."""
    DATA_KEY_INVALID = "data_key_invalid"
    """The wrapped data key does not unwrap under its KEK."""
    INDEX_ENTRY_INVALID = "index_entry_invalid"
    """The index's copy of the item's manifest is not this service's signed statement (the
    stored bytes cannot be checked against it; rebuild the index from the object store)."""


class EvidenceError(CustodyError):
    """Base of the evidence service's own errors."""


class ItemNotFound(EvidenceError):
    """No evidence item by that id among those the caller may see (existence is never revealed)."""


class CaseNotAssigned(EvidenceError):
    """The caller is not assigned, in the role that matters, the case they asked about."""


class InvalidRequest(EvidenceError):
    """A parameter is missing or malformed."""


class ItemDamaged(EvidenceError):
    """The item's stored bytes no longer match its seal: it has been marked damaged, nothing was served."""


class ItemNotServable(EvidenceError):
    """The item exists and the caller may see it, but it was rejected or is damaged: no bytes."""


class StoredBytesDamaged(IntegrityError):
    """The stored ciphertext of an item does not match what was sealed (or declared).

    ``finding`` names what differed, ``part`` which stored part, where one is to blame.
    """

    def __init__(self, finding: Finding, message: str, part: int | None = None) -> None:
        super().__init__(message)
        self.finding = finding
        self.part = part


class DownloadLinkUnknown(EvidenceError):
    """No download URL has this token (it never existed, or its record is gone)."""


class DownloadLinkGone(EvidenceError):
    """The download URL expired, or was used up by a whole-file download."""


class LedgerUnavailable(EvidenceError):
    """The audit service (the custody ledger) cannot be reached, or refused what it was asked."""


class LedgerTimeout(LedgerUnavailable):
    """The custody ledger did not log the events of an export within the time allowed."""
