"""custody_audit."""
