"""Evidence items: the index rows every other part of the service reads and updates."""
