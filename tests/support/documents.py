"""The OpenAPI documents the tests read, kept inside the repository at ``tests/data/openapi``.

``INDEX.md`` there lists every document with its source and what importing it must do;
``large/SOURCES.md`` does the same for the large ones. ``SWITCHBOARD_SHARED_SPECS`` may point at
another folder of the same layout (to try a new set of documents); without it the in-repo folder is
used, so a clone of the repository alone runs every test.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IN_REPO = REPO / "tests" / "data" / "openapi"
OVERRIDE = "SWITCHBOARD_SHARED_SPECS"


def specs_dir() -> Path:
    """The folder of OpenAPI documents: ``$SWITCHBOARD_SHARED_SPECS`` when set, else ``tests/data/openapi``."""
    configured = os.environ.get(OVERRIDE)
    path = Path(configured) if configured else IN_REPO
    if not (path / "INDEX.md").is_file():
        # A wrong override must not quietly fall back (or skip): the run would test other documents.
        where = f"{OVERRIDE}={configured}" if configured else str(path)
        raise RuntimeError(f"no INDEX.md in the OpenAPI document folder {where}")
    return path


SPECS_DIR = specs_dir()
