"""The router every domain declares its routes on: FastAPI's, with a fast "not mine".

The app includes some forty routers and FastAPI asks each in turn whether a request is
its own, and each of those asks its routes one by one (about 1 µs a route, with
bookkeeping per router on top): a page near the end of the list paid 0.2–0.3 ms before
its handler ran, measured, more than rendering it. One regular expression, the union of
a router's route paths, answers "none of mine" in a single match; a path it admits
goes through FastAPI's own matching unchanged, so which route wins, 405s and
redirects stay FastAPI's.
"""

from __future__ import annotations

import re

from fastapi import APIRouter
from starlette._utils import get_route_path
from starlette.routing import Match
from starlette.types import Scope

# A route's regex names its path parameters; in a union the names would clash.
_NAMED_GROUP = re.compile(r"\(\?P<\w+>")


def _union(routes: list) -> re.Pattern[str] | None:
    """One pattern matching every path any of `routes` can match, or None when a route
    has no path pattern of its own (a mount, an included router): no shortcut then."""
    patterns = []
    for route in routes:
        regex = getattr(route, "path_regex", None)
        if regex is None or getattr(route, "routes", None) is not None:
            return None
        patterns.append("(?:" + _NAMED_GROUP.sub("(?:", regex.pattern) + ")")
    return re.compile("|".join(patterns)) if patterns else None


class Router(APIRouter):
    """APIRouter that turns a request down in one regular expression when no route of
    its own can match the path."""

    _shortcut: tuple[int, re.Pattern[str] | None] = (-1, None)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http":
            count = len(self.routes)
            if self._shortcut[0] != count:  # routes are added while modules load
                self._shortcut = (count, _union(self.routes))
            pattern = self._shortcut[1]
            if pattern is not None and pattern.match(get_route_path(scope)) is None:
                return Match.NONE, {}
        return super().matches(scope)
