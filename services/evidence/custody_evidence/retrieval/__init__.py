"""Retrieval: listing items, reading their metadata and serving their verified bytes."""
