"""长辈版: larger text and bigger targets for older citizens, as 工信部's 适老化 rules ask.

A preference, not an account setting: it is kept in a cookie, so it works before
login, on a hall's shared computer it lasts only as long as the browser keeps it, and
every page reads it without a database query. Switching is a POST with CSRF (a GET
never changes state).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import Request

from portal.routing import Router
from portal.web import CsrfForm, redirect, safe_next

router = Router(include_in_schema=False)
COOKIE = "display"
MODES = ("elder", "standard")
ONE_YEAR = 365 * 24 * 3600


def elder_mode(request: Request) -> bool:
    return request.cookies.get(COOKIE) == "elder"


@router.post("/display-mode")
def switch_display(request: Request, form: CsrfForm):
    mode = form.get("mode")
    # Back to the page the switch was pressed on, known from the same-origin Referer
    # (the page does not echo its own path into a form: an error page would reflect it).
    referer = urlsplit(request.headers.get("referer", ""))
    same_site = referer.netloc == request.url.netloc
    response = redirect(safe_next(referer.path if same_site else None, "/"))
    if mode == "elder":
        response.set_cookie(COOKIE, "elder", max_age=ONE_YEAR, httponly=True, samesite="lax")
    else:
        response.delete_cookie(COOKIE)
    return response
