"""custody_evidence."""
