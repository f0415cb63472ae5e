"""长辈版: a CSRF-checked switch, kept in a cookie, read by every page."""

from __future__ import annotations

from tests.conftest import csrf_of


def test_the_switch_turns_elder_mode_on_and_off(client):
    home = client.get("/")
    assert 'class="elder"' not in home.text and ">长辈版</button>" in home.text
    token = csrf_of(home.text)
    on = client.post(
        "/display-mode",
        data={"csrf_token": token, "mode": "elder"},
        headers={"referer": "http://testserver/items"},
        follow_redirects=False,
    )
    assert on.status_code == 303 and on.headers["location"] == "/items"
    assert (
        "display=elder" in on.headers["set-cookie"]
        and "httponly" in on.headers["set-cookie"].lower()
    )
    page = client.get("/items")
    assert '<html lang="zh-CN" class="elder">' in page.text and ">标准版</button>" in page.text
    off = client.post(
        "/display-mode",
        data={"csrf_token": csrf_of(page.text), "mode": "standard"},
        headers={"referer": "https://evil.example/items"},
        follow_redirects=False,
    )
    assert off.status_code == 303 and off.headers["location"] == "/"
    assert 'class="elder"' not in client.get("/").text


def test_the_switch_needs_its_csrf_token(client):
    refused = client.post("/display-mode", data={"mode": "elder"}, follow_redirects=False)
    assert refused.status_code == 403
    assert "display=elder" not in refused.headers.get("set-cookie", "")


def test_phone_numbers_are_tap_to_call(client):
    from tests.conftest import pick_item

    item = pick_item(client, prereview=True)
    page = client.get(f"/items/{item['code']}").text
    assert 'href="tel:' in page
    assert '<a class="tel" href="tel:12345">12345</a>' in client.get("/status").text


def test_tapping_apply_twice_leaves_one_draft(client, person):
    from tests.conftest import pick_item, web_login

    web_login(client, person)
    item = pick_item(client, prereview=True)
    page = client.get(f"/items/{item['code']}")
    token = csrf_of(page.text)
    first = client.post(
        "/cases", data={"csrf_token": token, "item_code": item["code"]}, follow_redirects=False
    )
    second = client.post(
        "/cases", data={"csrf_token": token, "item_code": item["code"]}, follow_redirects=False
    )
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    # Once something is filled in, a new tap starts a new application.
    case_no = first.headers["location"].split("/")[2]
    from portal.cases.models import Case

    db = client.app.state.db
    with db.session(write=True) as s, s.begin():
        from sqlalchemy import select

        s.scalars(select(Case).where(Case.case_no == case_no)).one().form = {"x": "1"}
    third = client.post(
        "/cases", data={"csrf_token": token, "item_code": item["code"]}, follow_redirects=False
    )
    assert third.headers["location"] != first.headers["location"]


def test_ticked_rongque_boxes_come_back_ticked_after_an_error(client, person, auth):
    from tests.conftest import web_login
    from tests.factories import deferrable_item, ready_for_formal

    item = deferrable_item(client)
    deferred = [m["code"] for m in item["materials"] if m["deferrable"] and m["required"]]
    case_no = ready_for_formal(client, auth, item)
    web_login(client, person)
    review = client.get(f"/cases/{case_no}/review")
    assert "个工作日内补交" in review.text
    # Ticked the materials but forgot the commitment: refused, the ticks stay.
    refused = client.post(
        f"/cases/{case_no}/submission",
        data={"csrf_token": csrf_of(review.text), "deferred": deferred},
    )
    assert refused.status_code == 422
    for code in deferred:
        assert f'id="deferred-{code}" name="deferred" value="{code}" checked' in refused.text
