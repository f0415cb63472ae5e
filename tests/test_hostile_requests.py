"""Addresses and bodies no real client sends: a clear 4xx on every backend, never a 500.

PostgreSQL refuses NUL characters in text and numbers beyond its integer columns
where SQLite shrugs; these run in both CI passes so the two answer alike.
"""

from __future__ import annotations

import pytest

from tests.conftest import pick_item
from tests.factories import new_case


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/items/a%00b",
        "/api/v1/cases/WJ%00",
        "/api/v1/status?case_no=WJ%0020260101000001&phone_last4=1234",
        "/items/SC%000001",
        "/items?q=%E9%A3%9F%00",
    ],
)
def test_nul_in_the_address_is_a_422_with_a_chinese_message(client, auth, path):
    response = client.get(path, headers=auth)
    assert response.status_code == 422, response.text
    assert "无效字符" in response.text


def test_nul_in_a_page_form_is_a_422_page(client):
    response = client.post("/login", data={"phone": "139\x00", "password": "x", "csrf_token": "t"})
    assert response.status_code == 422
    assert "无效字符" in response.text and response.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("file_id", ["99999999999", "2147483648", "0", "-1"])
def test_a_file_id_outside_the_column_range_is_a_422(client, auth, file_id):
    item = pick_item(client)
    case = new_case(client, auth, item)
    code = client.get(f"/api/v1/items/{item['code']}").json()["materials"][0]["code"]
    response = client.delete(
        f"/api/v1/cases/{case['case_no']}/materials/{code}/files/{file_id}", headers=auth
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid"


def test_a_file_id_in_range_but_unknown_is_a_404(client, auth):
    item = pick_item(client)
    case = new_case(client, auth, item)
    code = client.get(f"/api/v1/items/{item['code']}").json()["materials"][0]["code"]
    response = client.delete(
        f"/api/v1/cases/{case['case_no']}/materials/{code}/files/2147483647", headers=auth
    )
    assert response.status_code == 404, response.text


def test_nul_in_body_text_is_a_422_on_every_backend(client, auth):
    item = pick_item(client)
    case = new_case(client, auth, item)
    detail = client.get(f"/api/v1/items/{item['code']}").json()
    text_fields = [f["name"] for f in detail["fields"] if f["type"] in ("text", "textarea")]
    form = {name: "湖塘\x00镇" for name in text_fields}
    response = client.patch(f"/api/v1/cases/{case['case_no']}", json={"form": form}, headers=auth)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid"
    assert set(response.json()["error"]["fields"]) == {f"form.{name}" for name in text_fields}
    registration = client.post(
        "/api/v1/accounts",
        json={
            "kind": "person",
            "name": "张\x00三",
            "id_number": "11010519491231002X",
            "phone": "13912345678",
            "password": "correct-horse-9",
        },
    )
    assert registration.status_code == 422, registration.text
    assert "无效字符" in registration.json()["error"]["message"]
    assert set(registration.json()["error"]["fields"]) == {"name"}


def test_an_oversized_form_or_json_body_is_a_413(client, auth):
    big = '{"form": {"x": "' + "字" * 400_000 + '"}}'
    response = client.post(
        "/api/v1/cases",
        content=big.encode(),
        headers={**auth, "Content-Type": "application/json"},
    )
    assert response.status_code == 413, response.text
    assert "过大" in response.json()["error"]["message"]
