"""What a case page shows and allows, computed in Python so templates only display.

The context is built by the case view (portal.cases.view) from the same rows the API's
case answer reads; this module names it for the page routes and the status page.
"""

from __future__ import annotations

from portal.cases.view import page_context as case_context
from portal.cases.view import stages

__all__ = ["case_context", "stages"]
