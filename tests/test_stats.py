"""改革成效: live figures from the database, as SVG charts with a table behind each."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from portal.appointments.models import Appointment
from portal.cases.models import Case
from portal.cases.service import next_case_no
from portal.delivery.models import Delivery
from portal.ratings.models import Rating


def item_where(client, *, domain: str, visits_zero: bool) -> dict:
    for summary in client.get(f"/api/v1/items?domain={domain}").json()["items"]:
        if (summary["visits"] == 0) == visits_zero:
            return client.get(f"/api/v1/items/{summary['code']}").json()
    raise AssertionError("no such item")


def at(day: str, hour: int = 2) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def make_case(session, account_id, item, status, **values) -> Case:
    case = Case(
        case_no=next_case_no(session),
        account_id=account_id,
        item_code=item["code"],
        status=status,
        **values,
    )
    session.add(case)
    session.flush()
    return case


def test_figures_come_from_the_cases(client, person, db):
    market = item_where(client, domain="market", visits_zero=True)
    trip = item_where(client, domain="market", visits_zero=False)
    build = item_where(client, domain="investment", visits_zero=True)
    owner = person["account_id"]
    with db.session(write=True) as s, s.begin():
        on_time = make_case(
            s, owner, market, "approved",
            submitted_at=at("2026-11-01"), accepted_at=at("2026-11-02"),
            finished_at=at("2026-11-04"), due_date=date(2026, 11, 5),
        )  # fmt: skip
        late = make_case(
            s, owner, market, "denied",
            submitted_at=at("2026-11-01"), accepted_at=at("2026-11-02"),
            finished_at=at("2026-11-10"), due_date=date(2026, 11, 5),
        )  # fmt: skip
        visited = make_case(s, owner, build, "submitted", submitted_at=at("2026-11-03"))
        s.add(
            Appointment(
                appointment_id="a-1", account_id=owner, case_id=visited.id, purpose="visit",
                hall_code=build["halls"][0]["code"], window=1, date=date(2026, 11, 9), period="am",
            )
        )  # fmt: skip
        make_case(
            s, owner, trip, "accepted", submitted_at=at("2026-11-03"), accepted_at=at("2026-11-04")
        )
        make_case(s, owner, market, "draft")
        picked = make_case(s, owner, market, "approved", submitted_at=at("2026-11-03"))
        s.add(Delivery(case_id=picked.id, method="pickup", hall_code=market["halls"][0]["code"]))
        for case, level in ((on_time, 5), (late, 1), (picked, 4)):
            s.add(
                Rating(
                    case_id=case.id,
                    level=level,
                    code=6 - level,
                    comment="好" if level > 2 else "慢",
                )
            )
    page = client.get("/stats")
    assert page.status_code == 200
    text = page.text
    headline = dict(re.findall(r"<dt>(.+?)</dt><dd>(.+?)</dd>", text))
    assert headline["申请件"] == "5 件"  # the draft does not count
    assert (
        headline["不见面办理"] == "40.0%"
    )  # on time, late: no trip; visit, trip item, pickup: trips
    assert headline["按时办结率"] == "50.0%"
    # Working days after acceptance: 11-03, 11-04 = 2; 11-03 … 11-10 = 6 (weekend skipped).
    promised = market["promised_days"]
    assert headline["平均办理用时 / 承诺时限"] == f"4.0 / {promised:.1f} 个工作日"
    assert headline["满意率"] == "66.7%"
    assert "<caption>申请件按领域（件）</caption>" in text
    assert re.search(r'<th scope="row">市场准入</th><td>4</td>', text)
    assert re.search(r'<th scope="row">投资建设</th><td>1</td>', text)
    assert re.search(r'<th scope="row">不见面</th><td>2</td><td>40.0%</td>', text)
    assert re.search(r'<th scope="row">市场准入</th><td>2</td><td>4.0</td>', text)
    assert re.search(r'<th scope="row">非常不满意</th><td>1</td>', text)
    # Charts are drawn on the server, hidden from screen readers that read the tables.
    charts = re.findall(r"<svg[^>]*>", text)
    assert len(charts) == 5 and all('aria-hidden="true"' in c for c in charts)
    assert text.count("<table>") == 5
    assert "<script" not in text.split("</main>")[0].split("<main")[1]


def test_an_empty_portal_shows_dashes_not_errors(client):
    page = client.get("/stats")
    assert page.status_code == 200
    headline = dict(re.findall(r"<dt>(.+?)</dt><dd>(.+?)</dd>", page.text))
    assert headline["申请件"] == "0 件"
    assert headline["不见面办理"] == "—" and headline["满意率"] == "—"
    assert "还没有已作出决定的办件" in page.text
