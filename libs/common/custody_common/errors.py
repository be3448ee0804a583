"""The errors shared libraries raise; each carries a message a person can act on."""


class CustodyError(Exception):
    """Base of every Custody error."""


class IntegrityError(CustodyError):
    """Stored bytes, a signature or a proof did not verify: never serve what raised this."""


class ConfigurationError(CustodyError):
    """A setting or key is missing or malformed."""
