"""好差评: one rating per finished case, sent to the bureau as `rating.submitted`."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from portal.cases import states
from portal.cases.models import Case
from portal.errors import Conflict, Invalid
from portal.exchange import payloads
from portal.ratings.models import Rating

# Stars as the protocol counts them; GB/T 39046 numbers the same five the other way round.
LEVELS = {5: "非常满意", 4: "满意", 3: "基本满意", 2: "不满意", 1: "非常不满意"}
COMMENT_REQUIRED_BELOW = 3  # 不满意 and 非常不满意 must say why
COMMENT_MAX = 500
# Quick tags: what went well, and what did not.
TAGS = (
    "办理速度快",
    "不用跑腿",
    "材料要求清楚",
    "网上操作方便",
    "工作人员热情",
    "等待时间长",
    "材料要求不清楚",
    "多次补正",
    "网上操作不便",
    "答复不及时",
)


def national_code(level: int) -> int:
    """GB/T 39046 好差评 code: 1 非常满意 … 5 非常不满意."""
    return 6 - level


def can_rate(case: Case, rating: Rating | None) -> bool:
    return rating is None and states.may_rate(case)


def check_rating(
    session: Session,
    *,
    case: Case,
    level: Any,
    comment: str = "",
    tags: list[str] | None = None,
) -> tuple[int, str, list[str]]:
    """The rating as it will be kept: (level, comment, tags); 409 or 422 otherwise."""
    if not states.may_rate(case):
        # Why not, in the citizen's words: not finished yet, or a draft never sent.
        if case.status not in states.FINISHED:
            raise Conflict("办件办结后才能评价。", code="not_finished")
        raise Conflict("草稿没有提交给审批局，不需要评价。", code="not_submitted")
    if session.get(Rating, case.id) is not None:
        raise Conflict("这个办件已经评价过了，每个办件只能评价一次。", code="already_rated")
    errors: dict[str, str] = {}
    if isinstance(level, str) and level.isdigit():
        level = int(level)
    if not isinstance(level, int) or isinstance(level, bool) or level not in LEVELS:
        errors["level"] = "请选择满意程度"
        level = None
    comment = (comment or "").replace("\x00", "").strip()
    if len(comment) > COMMENT_MAX:
        errors["comment"] = f"意见和建议不能超过 {COMMENT_MAX} 字"
    elif level is not None and level < COMMENT_REQUIRED_BELOW and not comment:
        errors["comment"] = "选择“不满意”或“非常不满意”时，请写明原因，帮助我们改进"
    chosen = list(dict.fromkeys(tags or []))
    if any(tag not in TAGS for tag in chosen):
        errors["tags"] = "请从列出的标签中选择"
    if errors:
        raise Invalid(errors, "评价内容有误，请按提示修改。")
    assert level is not None
    return level, comment, chosen


def rate_case(
    session: Session,
    *,
    case: Case,
    level: Any,
    comment: str = "",
    tags: list[str] | None = None,
) -> Rating:
    """Keep the rating and queue `rating.submitted` (409 before the case is finished or twice)."""
    level, comment, chosen = check_rating(
        session, case=case, level=level, comment=comment, tags=tags
    )
    rating = Rating(
        case_id=case.id, level=level, code=national_code(level), comment=comment, tags=chosen
    )
    session.add(rating)
    session.flush()
    states.apply(
        session,
        case,
        "rating.submitted",
        detail=LEVELS[level] + (f"：{comment}" if comment else ""),
        event_data=payloads.rating_data(rating),
    )
    return rating


def rating_info(case: Case, rating: Rating | None) -> dict[str, Any]:
    """What the case page shows about 好差评."""
    return {
        "can_rate": can_rate(case, rating),
        "rated": rating is not None,
        "label": LEVELS.get(rating.level, "") if rating else "",
        "rating": rating,
    }
