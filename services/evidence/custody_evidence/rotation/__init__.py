"""Key rotation: data keys re-wrapped under a new KEK version; the data is never re-encrypted."""
