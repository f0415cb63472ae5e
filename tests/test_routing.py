"""portal.routing.Router's shortcut never changes which routes match: for every router of
the app and many paths, its answer equals FastAPI's own matching with the shortcut off."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Match

from portal.routing import Router


def scope(app, path: str, method: str = "GET") -> dict:
    return {
        "type": "http",
        "path": path,
        "method": method,
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "app": app,
    }


def sample_paths(app) -> list[str]:
    """A concrete path for every route of the app, and near misses of each."""
    paths = []
    for included in app.router.routes:
        for route in getattr(getattr(included, "original_router", None), "routes", []):
            path = re.sub(r"{\w+:path}", "a/b", route.path)
            path = re.sub(r"{\w+}", "1", path)
            paths += [path, path + "/", path.rstrip("/") + "/x", path.upper(), path[:-1]]
    return paths


def match_both_ways(app, path: str, method: str = "GET") -> None:
    for included in app.router.routes:
        router = getattr(included, "original_router", None)
        if not isinstance(router, Router):
            continue
        fast, _ = included.matches(scope(app, path, method))
        kept = router._shortcut
        router._shortcut = (len(router.routes), None)  # FastAPI's matching alone
        try:
            plain, _ = included.matches(scope(app, path, method))
        finally:
            router._shortcut = kept
        assert fast == plain, (path, method, router.routes[0].path, fast, plain)


def test_every_route_and_its_near_misses_match_as_without_the_shortcut(app):
    routers = [
        r for r in app.router.routes if isinstance(getattr(r, "original_router", None), Router)
    ]
    assert len(routers) >= 30  # the domains declare their routes on portal.routing.Router
    paths = sample_paths(app)
    assert len(paths) > 500
    for path in paths:
        for method in ("GET", "POST", "DELETE"):
            match_both_ways(app, path, method)
    # The shortcut is in use: a page path is turned down by the API's routers.
    api = next(r for r in routers if r.original_router.routes[0].path.startswith("/api/v1/cases"))
    assert api.original_router._shortcut[1] is not None
    assert api.matches(scope(app, "/cases/WJ1"))[0] == Match.NONE


SEGMENTS = ["api", "v1", "cases", "items", "1", "WJ1", "files", "", "materials", "status"]
SEGMENTS += ["login", "bundles", "a.b", "%2F", "licences", "static", "x" * 300, "审批"]


# The app is only read: one for every example.
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    segments=st.lists(st.sampled_from(SEGMENTS), max_size=6),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]),
)
def test_any_path_matches_as_without_the_shortcut(app, segments, method):
    match_both_ways(app, "/" + "/".join(segments), method)
