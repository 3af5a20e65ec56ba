"""API key material: generation, the accepted prefixes, and the at-rest hash."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "iclosed_"
# The dev docs spell it with a hyphen; such a key is well-formed (and a different key).
ACCEPTED_PREFIXES = ("iclosed_", "iclosed-")


def new_key() -> str:
    """`iclosed_` + 43 URL-safe random characters (256 bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def is_well_formed(key: str) -> bool:
    return key.startswith(ACCEPTED_PREFIXES) and len(key) > len(KEY_PREFIX)


def hash_key(key: str) -> str:
    """SHA-256 of the whole key: keys are long random strings, so no slow KDF is needed."""
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    return key[:12]
