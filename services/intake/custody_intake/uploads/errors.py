"""What can go wrong with an upload, each with the HTTP status tus gives it and a sentence the
person at the other end can act on."""

from __future__ import annotations

from custody_common.errors import CustodyError


class UploadError(CustodyError):
    """An upload request that cannot be honoured; ``status`` is its HTTP answer."""

    status = 400

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.headers = headers or {}


class InvalidUploadRequest(UploadError):
    """A header or the metadata is missing or malformed."""


class TusVersionUnsupported(UploadError):
    """The client speaks a tus version other than 1.0.0."""

    status = 412


class CaseNotAssigned(UploadError):
    """The caller may not submit to that case, or is not an investigator."""

    status = 403


class UploadNotFound(UploadError):
    """No such upload, or not the caller's: both look the same from outside."""

    status = 404


class UploadGone(UploadError):
    """The upload was terminated or expired; its bytes are deleted."""

    status = 410


class OffsetMismatch(UploadError):
    """The PATCH starts elsewhere than where the upload stands."""

    status = 409


class UploadFinished(UploadError):
    """Every byte has arrived; the submission can no longer change."""

    status = 409


class UploadTooLarge(UploadError):
    """More bytes than the server accepts or than the upload declared."""

    status = 413


class UnsupportedMediaType(UploadError):
    """A PATCH body that is not ``application/offset+octet-stream``."""

    status = 415


class UploadLocked(UploadError):
    """Another PATCH is writing to this upload right now."""

    status = 423


class ChecksumMismatch(UploadError):
    """The bytes of a PATCH do not match its ``Upload-Checksum``; none of them were kept."""

    status = 460


class StorageUnavailable(UploadError):
    """The object store or database could not take the bytes now; nothing of the PATCH was kept."""

    status = 503


class LockLost(UploadError):
    """This PATCH stalled so long that another took the upload over; nothing of it was kept."""

    status = 423
