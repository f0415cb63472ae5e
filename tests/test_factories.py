"""The test kit builds what it says: every status make_case names is reached through the
API and the bureau's callbacks, and make_account's accounts are what /api/v1/me says."""

from __future__ import annotations

import pytest

from tests.factories import CASE_STATUSES, make_account, make_case


@pytest.mark.parametrize("status", CASE_STATUSES)
def test_make_case_reaches_each_status(client, auth, status):
    case = make_case(client, auth, status)
    answer = client.get(f"/api/v1/cases/{case['case_no']}", headers=auth)
    assert answer.status_code == 200 and answer.json()["status"] == status


def test_make_case_refuses_a_status_it_has_no_road_to(client, auth):
    with pytest.raises(ValueError, match="no road"):
        make_case(client, auth, "approved_twice")


@pytest.mark.parametrize(
    ("kind", "verified", "level"), [("person", False, 0), ("enterprise", True, 1)]
)
def test_make_account_kind_and_proven_phone(client, kind, verified, level):
    account = make_account(client, kind=kind, verified=verified)
    me = client.get("/api/v1/me", headers=account["headers"]).json()
    assert me["kind"] == kind
    assert (me.get("verified") or {}).get("level", 0) == level
