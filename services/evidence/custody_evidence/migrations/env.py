"""Alembic environment of the evidence database."""

from custody_common.db import run_alembic_environment
from custody_evidence.tables import metadata

run_alembic_environment(metadata, "evidence")
