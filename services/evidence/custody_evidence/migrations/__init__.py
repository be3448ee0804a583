"""Alembic migrations of the evidence database."""
