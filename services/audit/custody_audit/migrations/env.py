"""Alembic environment of the audit database."""

from custody_common.db import run_alembic_environment
from custody_audit.log.tables import metadata

run_alembic_environment(metadata, "audit")
