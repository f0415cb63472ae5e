"""The procedure's fixed terms, stated once: services, bureau handlers and pages read them.

Pages reach them as the Jinja global `procedure` (portal/web.py), so no template
restates a number or a sentence that the code also relies on.
"""

from __future__ import annotations

# 行政许可法 §32: 补正 must be asked for within five days of receiving the application,
# counted here as working days after the formal submission; later, it counts as accepted.
CORRECTION_NOTICE_DAYS = 5

# What the submitted page promises for 网上预审, and what the status page's date counts.
PREREVIEW_WORKING_DAYS = 1

# The remedy stated with a rejection, and with a decision whose event names none.
DEFAULT_REMEDY = (
    "如不服本决定，可以在收到决定之日起六十日内向常州市武进区人民政府申请行政复议，"
    "或者在六个月内依法向人民法院提起行政诉讼。"
)
