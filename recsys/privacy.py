"""Pseudonyms of person ids: what leaves the service instead of the id the front knows.

The event store keeps visitor ids in this form, and audiences name people by it, so that a
coordinator's list joins to the platform's contact records (which hold the salt) but names
nobody to whoever reads it without them.
"""

from __future__ import annotations

import hashlib
import hmac


def pseudonym(value: str | None, salt: str) -> str | None:
    """The stored form of a visitor id: hex HMAC-SHA256 keyed by the salt (None stays None).

    Keyed, so that without the salt nobody can confirm a guessed id (or an IP address behind
    the front's `user` hash) against the store.
    """
    if value is None:
        return None
    return hmac.new(salt.encode(), value.encode(), hashlib.sha256).hexdigest()
