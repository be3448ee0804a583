"""Download URLs: short-lived links to one item's bytes that need no bearer token, for a
browser's download link or video element; the access is recorded when the link is made."""
