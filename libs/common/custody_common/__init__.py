"""custody_common."""
