"""The Python client and ``custody`` command line of Custody: resumable submission, verified
retrieval, court packages, and offline verification of custody chains and packages."""

from custody_client.api import (
    CustodyClient,
    ExportedPackage,
    FetchedItem,
    ItemStatus,
    Progress,
    client_from_environment,
)
from custody_client.errors import (
    AuthError,
    ClientError,
    InvalidRequest,
    NetworkError,
    NotFound,
    Rejected,
    VerificationFailed,
)
from custody_client.package import PackageVerdict, verify_package
from custody_client.verify import ChainReport, Checkpoint, LogKey, open_checkpoint, verify_chain

__all__ = [
    "AuthError",
    "ChainReport",
    "Checkpoint",
    "ClientError",
    "CustodyClient",
    "ExportedPackage",
    "FetchedItem",
    "InvalidRequest",
    "ItemStatus",
    "LogKey",
    "NetworkError",
    "NotFound",
    "PackageVerdict",
    "Progress",
    "Rejected",
    "VerificationFailed",
    "client_from_environment",
    "open_checkpoint",
    "verify_chain",
    "verify_package",
]
