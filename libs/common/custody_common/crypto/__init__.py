"""Cryptography: STREAM AEAD for evidence bytes, envelope keys, service signatures."""
