"""Alembic environment of the intake database."""

from custody_common.db import run_alembic_environment
from custody_intake.tables import metadata

run_alembic_environment(metadata, "intake")
