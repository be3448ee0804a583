"""What tests share: servers started for them, fixtures, and the data beside the repository."""

from pathlib import Path

SHARED = Path(__file__).resolve().parents[3] / "shared"
"""``shared/`` sits beside the repository, here and in CI: the S3 server's scripts, test vectors."""
