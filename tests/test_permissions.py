"""What the citizen may do with a case, status by status, transcribed here by hand.

Sources: bureau-protocol.md "Case statuses (portal)" and its transition table (the
citizen's actions), citizen-api.md (edits while 草稿 or 需补正; 补正 while 待补正;
`409` rating before the case is finished; delivery `409` for items without express),
the 告知承诺 rule (only before the formal submission). The table below is not read
from portal/cases/states.py: a change there that the contract does not make fails here.
"""

from __future__ import annotations

from dataclasses import asdict
from types import SimpleNamespace

import pytest

from portal.cases import states

ALL = {
    "draft",
    "prereview",
    "returned",
    "prereview_passed",
    "submitted",
    "correction_required",
    "accepted",
    "approved",
    "denied",
    "rejected",
    "withdrawn",
}
EXPECTED = {
    "edit": {"draft", "returned"},
    "correct": {"correction_required"},
    # an item with pre-review: a draft goes to pre-review first
    "prereview": {"draft", "returned"},
    "formal": {"prereview_passed"},
    "gaozhi": {"draft", "prereview_passed"},
    "withdraw": {
        "draft",  # deleting the draft
        "prereview",
        "returned",
        "prereview_passed",
        "submitted",
        "correction_required",
    },
    "rate": {"approved", "denied", "rejected", "withdrawn"},  # finished after submission
    "delivery": ALL - {"denied", "rejected", "withdrawn"},
}


def item(*, prereview=True, commitment=True, express=True, halls=("WJ-ZWZX",)):
    return SimpleNamespace(
        prereview=prereview,
        commitment_text="承诺书" if commitment else "",
        express=express,
        halls=list(halls),
    )


def case(status, *, submitted=True, kind="new"):
    return SimpleNamespace(
        status=status, submitted_at="2026-12-01" if submitted else None, application_kind=kind
    )


@pytest.mark.parametrize("status", sorted(ALL))
def test_each_permission_holds_exactly_where_the_contract_says(status):
    may = asdict(states.permissions(case(status), item()))
    assert set(may) == set(EXPECTED)
    for name, where in EXPECTED.items():
        assert may[name] == (status in where), (status, name)


def test_without_pre_review_a_draft_is_submitted_formally():
    may = states.permissions(case("draft", submitted=False), item(prereview=False))
    assert may.formal and not may.prereview


def test_item_rules_switch_permissions_off():
    assert not states.permissions(case("draft"), item(commitment=False)).gaozhi
    no_way_home = item(express=False, halls=())
    assert not states.permissions(case("approved"), no_way_home).delivery
    # bureau-protocol.md: the approval of a 注销 carries no licence, so none comes home
    assert not states.permissions(case("approved", kind="cancellation"), item()).delivery
    assert states.permissions(case("approved", kind="renewal"), item()).delivery
    # a draft deleted before it was ever submitted has nothing to rate
    assert not states.permissions(case("withdrawn", submitted=False), item()).rate


@pytest.mark.parametrize("status", sorted(ALL))
def test_only_a_withdrawn_case_takes_no_more_answers_in_its_bundle(status):
    # 一件事: a case the citizen withdrew (draft deleted, or application withdrawn after
    # it was sent) is passed over by the one form and the one checklist; only a deleted
    # draft, never sent to the bureau, also leaves the bundle (bureau-protocol.md `bundle`).
    assert states.withdrawn(case(status)) == (status == "withdrawn")
    assert states.withdrawn(case(status, submitted=False)) == (status == "withdrawn")
    assert not states.deleted_draft(case(status))
    assert states.deleted_draft(case(status, submitted=False)) == (status == "withdrawn")
