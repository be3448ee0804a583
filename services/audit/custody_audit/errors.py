"""What can go wrong in the audit service, each with a message a person can act on."""

from __future__ import annotations

from custody_common.errors import CustodyError, IntegrityError


class AuditError(CustodyError):
    """Base of the audit service's own errors."""


class EventRejected(AuditError):
    """A message on the events stream is not a custody event the log may hold: unsigned,
    signed by the wrong key, altered, malformed, or sent on another service's subject."""


class EventDeferred(AuditError):
    """A message whose signature fails under the keys read a moment ago, when the keys may not
    be read again yet: a service may have just changed its key. It is neither logged nor kept
    aside, but delivered again later, when the keys may be read once more."""


class OutOfRange(AuditError):
    """An index or tree size the log does not have (yet), or a page too large."""


class NotFound(AuditError):
    """Nothing the caller may see under this name."""


class LogDamaged(IntegrityError):
    """The stored log does not match its own signed checkpoints: stop appending and run
    ``custody-audit verify-log`` to find the altered entry."""
