"""RFC 3161 time-stamps of the custody log's checkpoints, from a configured authority."""
