"""改革成效: live figures computed from the cases, and the geometry of their SVG charts.

Definitions (also shown on the page):

* 申请件: cases that were submitted at least once (drafts never count).
* 不见面: a submitted case of an item needing no visit (到现场次数 0), with no kept
  appointment at a hall and the licence not collected at a window.
* 按时办结: a decided case (准予 or 不予许可) finished on or before its due date.
* 办理用时: working days from the day of acceptance (not counted) to the day of the
  decision, against the item's promised limit (承诺时限), averaged per domain.
* 满意率: ratings of 非常满意, 满意 or 基本满意 over all ratings (好差评).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.appointments.models import Appointment
from portal.cases import states
from portal.cases.models import Case, TimelineEntry
from portal.catalogue.models import Item
from portal.catalogue.schemas import DOMAIN_LABELS
from portal.clock import to_cst, working_days_left
from portal.delivery.models import Delivery
from portal.ratings.models import Rating

LEVEL_LABELS = {5: "非常满意", 4: "满意", 3: "基本满意", 2: "不满意", 1: "非常不满意"}
SATISFIED_LEVELS = frozenset({3, 4, 5})
CHART_WIDTH = 340
LABEL_WIDTH = 96
BAR_HEIGHT = 22
ROW_GAP = 12


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


@dataclass
class Figures:
    submitted: int = 0
    by_domain: dict[str, int] = field(default_factory=dict)
    no_visit: int = 0
    decided: int = 0
    on_time: int = 0
    days: dict[str, list[tuple[int, int]]] = field(
        default_factory=dict
    )  # domain -> (used, promised)
    ratings: Counter[int] = field(default_factory=Counter)

    @property
    def no_visit_share(self) -> float | None:
        return _share(self.no_visit, self.submitted)

    @property
    def on_time_share(self) -> float | None:
        return _share(self.on_time, self.decided)

    @property
    def rated(self) -> int:
        return sum(self.ratings.values())

    @property
    def satisfaction(self) -> float | None:
        return _share(
            sum(n for level, n in self.ratings.items() if level in SATISFIED_LEVELS), self.rated
        )

    def average_days(self, domain: str | None = None) -> tuple[float, float] | None:
        pairs = (
            self.days.get(domain, [])
            if domain
            else [p for rows in self.days.values() for p in rows]
        )
        if not pairs:
            return None
        return (
            sum(u for u, _ in pairs) / len(pairs),
            sum(p for _, p in pairs) / len(pairs),
        )


def compute(session: Session) -> Figures:
    """Every figure of the page from the database as it is now."""
    figures = Figures(by_domain={d: 0 for d in DOMAIN_LABELS})
    rows = session.execute(
        select(Case, Item.domain, Item.visits, Item.promised_days)
        .join(Item, Item.code == Case.item_code)
        .where(Case.submitted_at.is_not(None))
    ).all()
    case_ids = [case.id for case, *_ in rows]
    visited = (
        set(
            session.scalars(
                select(Appointment.case_id).where(
                    Appointment.case_id.in_(case_ids), Appointment.status == "booked"
                )
            )
        )
        if case_ids
        else set()
    )
    picked_up = (
        set(
            session.scalars(
                select(Delivery.case_id).where(
                    Delivery.case_id.in_(case_ids), Delivery.method == "pickup"
                )
            )
        )
        if case_ids
        else set()
    )
    # §45: time suspended (hearing, testing, expert review…) does not count as time used.
    suspended: dict[int, int] = {}
    if case_ids:
        entries = session.execute(
            select(TimelineEntry.case_id, TimelineEntry.data).where(
                TimelineEntry.case_id.in_(case_ids),
                TimelineEntry.type.in_(("clock.resumed", "case.approved", "case.denied")),
            )
        )
        for case_id, data in entries.tuples():
            days = (data or {}).get("suspended_days") or 0
            suspended[case_id] = suspended.get(case_id, 0) + int(days)
    for case, domain, visits, promised in rows:
        figures.submitted += 1
        figures.by_domain[domain] = figures.by_domain.get(domain, 0) + 1
        if visits == 0 and case.id not in visited and case.id not in picked_up:
            figures.no_visit += 1
        if case.status in (states.APPROVED, states.DENIED) and case.finished_at is not None:
            finished = to_cst(case.finished_at).date()
            if case.due_date is not None:
                figures.decided += 1
                figures.on_time += finished <= case.due_date
            if case.accepted_at is not None:
                accepted = to_cst(case.accepted_at).date()
                used = max(0, working_days_left(accepted, finished) - suspended.get(case.id, 0))
                figures.days.setdefault(domain, []).append((used, promised))
    figures.ratings = Counter(
        session.scalars(select(Rating.level).where(Rating.level.between(1, 5)))
    )
    return figures


def bar_chart(
    rows: Sequence[tuple[str, float, str]], *, scale: float | None = None
) -> dict[str, Any]:
    """Horizontal bars: (label, value, text shown after the bar) -> SVG geometry."""
    top = scale or max((v for _, v, _ in rows), default=0) or 1
    room = CHART_WIDTH - LABEL_WIDTH - 56
    bars = []
    for index, (label, value, text) in enumerate(rows):
        y = index * (BAR_HEIGHT + ROW_GAP)
        width = round(room * value / top, 1) if value > 0 else 0
        bars.append(
            {
                "label": label,
                "text": text,
                "y": y,
                "text_y": y + BAR_HEIGHT * 0.72,
                "x": LABEL_WIDTH,
                "width": width,
                "text_x": LABEL_WIDTH + width + 6,
            }
        )
    height = max(1, len(rows)) * (BAR_HEIGHT + ROW_GAP)
    return {"width": CHART_WIDTH, "height": height, "bar_height": BAR_HEIGHT, "bars": bars}


def page_context(session: Session) -> dict[str, Any]:
    """The figures, each chart's geometry, and the table behind it."""
    f = compute(session)
    domain_rows = [(DOMAIN_LABELS[d], n, f"{n} 件") for d, n in f.by_domain.items()]
    visit_rows = [
        ("不见面", f.no_visit, percent(f.no_visit_share)),
        (
            "需到现场",
            f.submitted - f.no_visit,
            percent(_share(f.submitted - f.no_visit, f.submitted)),
        ),
    ]
    time_rows = [
        ("按时办结", f.on_time, percent(f.on_time_share)),
        ("超期办结", f.decided - f.on_time, percent(_share(f.decided - f.on_time, f.decided))),
    ]
    day_rows = []
    day_table = []
    for domain, label in DOMAIN_LABELS.items():
        average = f.average_days(domain)
        if average is None:
            continue
        used, promised = average
        day_rows.append((f"{label} 实际", used, f"{used:.1f} 天"))
        day_rows.append((f"{label} 承诺", promised, f"{promised:.1f} 天"))
        day_table.append(
            {"label": label, "count": len(f.days[domain]), "used": used, "promised": promised}
        )
    rating_rows = [
        (LEVEL_LABELS[level], f.ratings.get(level, 0), f"{f.ratings.get(level, 0)} 条")
        for level in (5, 4, 3, 2, 1)
    ]
    overall = f.average_days()
    return {
        "figures": f,
        "headline": {
            "submitted": f.submitted,
            "no_visit": percent(f.no_visit_share),
            "on_time": percent(f.on_time_share),
            "days": f"{overall[0]:.1f} / {overall[1]:.1f}" if overall else "—",
            "satisfaction": percent(f.satisfaction),
        },
        "domain_chart": bar_chart(domain_rows),
        "domain_rows": domain_rows,
        "visit_chart": bar_chart(visit_rows, scale=max(f.submitted, 1)),
        "visit_rows": visit_rows,
        "time_chart": bar_chart(time_rows, scale=max(f.decided, 1)),
        "time_rows": time_rows,
        "day_chart": bar_chart(day_rows) if day_rows else None,
        "day_table": day_table,
        "rating_chart": bar_chart(rating_rows, scale=max(f.rated, 1)),
        "rating_rows": rating_rows,
    }
