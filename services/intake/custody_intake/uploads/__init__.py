"""Uploads from the field over tus 1.0.0, and their submissions."""
