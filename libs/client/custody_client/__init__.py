"""The Python client and ``custody`` command line of Custody: resumable submission, verified
retrieval, court packages, and offline verification of custody chains and packages."""

import importlib
from typing import Any

# Names are loaded on first use, so the offline verifiers (``custody_client.verify`` and
# ``custody_client.package``) import nothing beyond the standard library and cryptography.
_HOMES = {
    "CustodyClient": "custody_client.api",
    "ExportedPackage": "custody_client.api",
    "FetchedItem": "custody_client.api",
    "ItemStatus": "custody_client.api",
    "Progress": "custody_client.api",
    "client_from_environment": "custody_client.api",
    "AuthError": "custody_client.errors",
    "ClientError": "custody_client.errors",
    "InvalidRequest": "custody_client.errors",
    "NetworkError": "custody_client.errors",
    "NotFound": "custody_client.errors",
    "Rejected": "custody_client.errors",
    "VerificationFailed": "custody_client.errors",
    "PackageVerdict": "custody_client.package",
    "verify_package": "custody_client.package",
    "ChainReport": "custody_client.verify",
    "Checkpoint": "custody_client.verify",
    "LogKey": "custody_client.verify",
    "open_checkpoint": "custody_client.verify",
    "verify_chain": "custody_client.verify",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'custody_client' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


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
