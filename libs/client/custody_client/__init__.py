"""custody_client."""
