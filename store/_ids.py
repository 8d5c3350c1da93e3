"""Resource identifiers: a short type prefix and 96 random bits, e.g. ``cus_3f9a0c...``."""

from __future__ import annotations

import re
import secrets

# What callers may choose as an id where the API allows it (customers): URL-safe, bounded.
CLIENT_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


def new_id(prefix: str) -> str:
    """A fresh id such as ``new_id("cus") -> "cus_8c1f0e2d4b6a7c9e0f1a2b3c"``."""
    return f"{prefix}_{secrets.token_hex(12)}"
