"""custody_intake."""
