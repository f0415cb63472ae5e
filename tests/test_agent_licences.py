"""An agent (经办人) applies about the licences of an enterprise that authorised them:
the wallet shows them under 代…办理的证照, a tap files a 变更 in the enterprise's name,
and only the items the authorisation covers are shown or open (citizen-api.md
"Licences", `on_behalf_of`)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from portal.accounts.models import Account, Authorisation
from portal.catalogue.models import Item
from tests.conftest import bearer, csrf_of, make_uscc, register, web_login
from tests.factories import FOOD, issue_food_licence, true_today

NUMBER = "JY13204120000321"


def authorise(db, enterprise: dict, agent_phone: str, items: list[str] | None) -> None:
    # Set directly: granting needs a platform-verified legal person (test_authorisations).
    with db.session(write=True) as s, s.begin():
        agent = s.scalars(select(Account).where(Account.phone == agent_phone)).one()
        s.add(
            Authorisation(
                enterprise_id=enterprise["account_id"],
                agent_id=agent.id,
                items=items,
                valid_to=true_today() + timedelta(days=365),
            )
        )


def setup_company(client, db, person) -> tuple[dict, dict, str]:
    company = register(
        client, kind="enterprise", name="常州惠民餐饮有限公司", id_number=make_uscc()
    )
    company_auth = bearer(client, company)
    issue_food_licence(client, company_auth, NUMBER, true_today() + timedelta(days=3 * 365))
    # A second licence of the company, for an item the agent is not authorised for.
    with db.session() as s:
        other = s.scalars(
            select(Item.code).where(Item.licence_name != "", Item.code != FOOD).order_by(Item.code)
        ).first()
    registered = client.post(
        "/api/v1/licences",
        json={"number": "QT-OTHER-0001", "item_code": other, "valid_from": "2024-01-02"},
        headers=company_auth,
    )
    assert registered.status_code == 201, registered.text
    authorise(db, company, person["phone"], [FOOD])
    return company, company_auth, other


def test_an_agent_applies_about_the_enterprises_licence_in_its_name(client, auth, person, db):
    company, company_auth, _ = setup_company(client, db, person)
    uscc = company["id_number"]

    # Only what the authorisation covers; the agent's own wallet stays the agent's.
    listed = client.get(f"/api/v1/licences?on_behalf_of={uscc}", headers=auth)
    assert listed.status_code == 200, listed.text
    assert [lic["number"] for lic in listed.json()["licences"]] == [NUMBER]
    assert client.get("/api/v1/licences", headers=auth).json()["licences"] == []

    applied = client.post(
        f"/api/v1/licences/{NUMBER}/applications",
        json={"kind": "change", "on_behalf_of": uscc},
        headers=auth,
    )
    assert applied.status_code == 201, applied.text
    case_no = applied.json()["case_no"]
    # The enterprise sees the case filed in its name; a second tap returns the same draft.
    assert client.get(f"/api/v1/cases/{case_no}", headers=company_auth).status_code == 200
    again = client.post(
        f"/api/v1/licences/{NUMBER}/applications",
        json={"kind": "change", "on_behalf_of": uscc},
        headers=auth,
    )
    assert again.status_code == 200 and again.json()["case_no"] == case_no


def test_what_the_agent_may_not_do_answers_clearly(client, auth, person, db):
    company, _, _ = setup_company(client, db, person)
    uscc = company["id_number"]

    # The company's other licence: outside the authorisation.
    outside = client.post(
        "/api/v1/licences/QT-OTHER-0001/applications",
        json={"kind": "change", "on_behalf_of": uscc},
        headers=auth,
    )
    assert outside.status_code == 403 and outside.json()["error"]["code"] == "not_authorised"
    # A number the company does not hold: like one that does not exist.
    missing = client.post(
        "/api/v1/licences/JY-NOPE/applications",
        json={"kind": "change", "on_behalf_of": uscc},
        headers=auth,
    )
    assert missing.status_code == 404
    # An enterprise that never authorised the caller: 403 before any licence is looked up.
    stranger = register(client, kind="enterprise", name="常州陌生有限公司", id_number=make_uscc())
    for number in (NUMBER, "JY-NOPE"):
        refused = client.post(
            f"/api/v1/licences/{number}/applications",
            json={"kind": "change", "on_behalf_of": stranger["id_number"]},
            headers=auth,
        )
        assert refused.status_code == 403, refused.text
    listed = client.get(f"/api/v1/licences?on_behalf_of={stranger['id_number']}", headers=auth)
    assert listed.status_code == 403
    # Without on_behalf_of the company's licence is simply not the caller's.
    mine = client.post(
        f"/api/v1/licences/{NUMBER}/applications", json={"kind": "change"}, headers=auth
    )
    assert mine.status_code == 404


def test_the_wallet_page_lists_the_enterprises_licences_and_files_for_it(client, auth, person, db):
    company, company_auth, _ = setup_company(client, db, person)
    web_login(client, person)
    page = client.get("/licences").text
    assert "代常州惠民餐饮有限公司办理的证照" in page
    assert NUMBER in page and "QT-OTHER-0001" not in page
    assert f'name="on_behalf_of" value="{company["id_number"]}"' in page
    tapped = client.post(
        f"/licences/{NUMBER}/applications",
        data={"kind": "change", "on_behalf_of": company["id_number"], "csrf_token": csrf_of(page)},
        follow_redirects=False,
    )
    assert tapped.status_code == 303, tapped.text
    case_no = tapped.headers["location"].split("/")[2]
    cases = client.get("/api/v1/cases", headers=company_auth).json()["cases"]
    assert case_no in [c["case_no"] for c in cases]
