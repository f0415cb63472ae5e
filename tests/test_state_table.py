"""The state table against the contract, transcribed here by hand (not read from the table).

Sources: bureau-protocol.md "Case statuses (portal)" and its transition table, and
the Version 1.1 sections (补正 after the formal submission; the clock).
"""

from __future__ import annotations

from portal.cases import states

STATUSES = {
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
FINISHED = {"approved", "denied", "rejected", "withdrawn"}

# event -> (the statuses it is accepted in, the status after; None: unchanged)
BUREAU_EVENTS = {
    "prereview.passed": ({"prereview"}, "prereview_passed"),
    "prereview.returned": ({"prereview"}, "returned"),
    "case.accepted": ({"submitted"}, "accepted"),
    "case.rejected": ({"submitted"}, "rejected"),
    "correction.requested": ({"submitted"}, "correction_required"),
    "inspection.scheduled": ({"accepted"}, None),
    "clock.suspended": ({"accepted"}, None),
    "clock.resumed": ({"accepted"}, None),
    "deadline.extended": ({"accepted"}, None),
    "case.approved": ({"accepted"}, "approved"),
    "case.denied": ({"accepted"}, "denied"),
    "licence.ready_for_pickup": ({"approved"}, None),
    "licence.shipped": ({"approved"}, None),
    "licence.delivered": ({"approved"}, None),
    "rating.reply": (FINISHED, None),
}
# What the citizen does: "(returned → prereview …)", "draft → submitted" for items
# without pre-review, prereview_passed → submitted, withdrawal by the citizen from
# prereview, returned, prereview_passed, submitted (and, in 1.1, correction_required).
CITIZEN_ACTIONS = {
    "prereview.submitted": ({"draft", "returned"}, "prereview"),
    "formal.submitted": ({"draft", "prereview_passed"}, "submitted"),
    "case.withdrawn": (
        {"prereview", "returned", "prereview_passed", "submitted", "correction_required"},
        "withdrawn",
    ),
    "case.corrected": ({"correction_required"}, "submitted"),
}


def test_the_statuses_are_the_contracts():
    assert set(states.STATUS_LABELS) == STATUSES
    assert set(states.FINISHED) == FINISHED
    assert all(states.STATUS_LABELS[s] for s in STATUSES)


def test_every_bureau_event_fits_where_the_contract_says():
    for event, (sources, target) in BUREAU_EVENTS.items():
        transition = states.TRANSITIONS[event]
        assert set(transition.sources) == sources, event
        assert transition.target == target, event
        assert transition.source == "bureau", event


def test_every_citizen_action_fits_where_the_contract_says():
    for action, (sources, target) in CITIZEN_ACTIONS.items():
        transition = states.TRANSITIONS[action]
        assert set(transition.sources) == sources, action
        assert transition.target == target, action
        assert transition.source == "citizen", action


def test_finished_cases_are_never_reopened():
    for key, transition in states.TRANSITIONS.items():
        if transition.target is not None and transition.sources & FINISHED:
            assert transition.target in FINISHED, key
