"""Fixity: checking, on request and on a schedule, that sealed items are still what was sealed."""
