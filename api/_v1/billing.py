"""/v1 routes: billing (being built in issue 3)."""

from __future__ import annotations

from api._v1._common import router as make_router

router = make_router("billing")
