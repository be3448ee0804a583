"""The Python client and ``custody`` command line of Custody: resumable submission, verified
retrieval, and offline verification of custody chains."""

from custody_client.api import CustodyClient, FetchedItem, ItemStatus, Progress, client_from_environment
from custody_client.errors import (
    AuthError,
    ClientError,
    InvalidRequest,
    NetworkError,
    NotFound,
    Rejected,
    VerificationFailed,
)
from custody_client.verify import ChainReport, Checkpoint, LogKey, open_checkpoint, verify_chain

__all__ = [
    "AuthError",
    "ChainReport",
    "Checkpoint",
    "ClientError",
    "CustodyClient",
    "FetchedItem",
    "InvalidRequest",
    "ItemStatus",
    "LogKey",
    "NetworkError",
    "NotFound",
    "Progress",
    "Rejected",
    "VerificationFailed",
    "client_from_environment",
    "open_checkpoint",
    "verify_chain",
]
