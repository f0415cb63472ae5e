"""Properties, checked with Hypothesis: form cleaning, request signatures, the case status machine.

The status machine is driven through HTTP — the citizen's API calls and the
bureau's signed callbacks in any order — against a model built from
`portal.cases.states.TRANSITIONS`: a case never reaches a status outside the
table, an event applies only from one of its source statuses, and one that does
not fit answers 409 and changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
import uuid
from datetime import date

from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from portal.cases import states
from portal.cases.forms import FieldProblem, clean_form, clean_value, display_value
from portal.exchange import signing
from tests.conftest import PDF_BYTES, pick_item
from tests.factories import SECRET, fill_everything, new_case
from tests.kit import ric_check, uscc_check

# --- form fields --------------------------------------------------------------------------

specs = st.one_of(
    st.builds(
        lambda n: {"name": "f", "label": "字段", "type": "text", "max_length": n},
        st.one_of(st.none(), st.integers(1, 300)),
    ),
    st.builds(
        lambda lo, extra: {
            "name": "f",
            "label": "字段",
            "type": "text",
            "min_length": lo,
            "max_length": lo + extra,
        },
        st.integers(1, 20),
        st.integers(0, 20),
    ),
    st.builds(
        lambda lo, hi: {"name": "f", "label": "字段", "type": "integer", "min": lo, "max": hi},
        st.one_of(st.none(), st.integers(-1000, 1000)),
        st.one_of(st.none(), st.integers(-1000, 10**9)),
    ),
    st.just({"name": "f", "label": "字段", "type": "ric"}),
    st.just({"name": "f", "label": "字段", "type": "uscc"}),
    st.builds(
        lambda n: {"name": "f", "label": "字段", "type": "textarea", "max_length": n},
        st.one_of(st.none(), st.integers(1, 3000)),
    ),
    st.builds(
        lambda lo, hi: {"name": "f", "label": "字段", "type": "number", "min": lo, "max": hi},
        st.one_of(st.none(), st.integers(-1000, 1000)),
        st.one_of(st.none(), st.integers(-1000, 10**9)),
    ),
    st.just({"name": "f", "label": "字段", "type": "date"}),
    st.just({"name": "f", "label": "字段", "type": "phone"}),
    st.just({"name": "f", "label": "字段", "type": "checkbox"}),
    st.builds(
        lambda options: {"name": "f", "label": "字段", "type": "select", "options": options},
        st.lists(st.text(min_size=1, max_size=10), min_size=1, max_size=5),
    ),
)
# Whatever a JSON body or a form can carry, plus strings shaped like valid values.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
plausible = st.one_of(
    st.dates(date(1800, 1, 1), date(2300, 12, 31)).map(date.isoformat),
    st.from_regex(r"\A1[3-9]\d{9}\Z"),
    st.from_regex(r"\A0\d{2,3}-?\d{7,8}\Z"),
    st.from_regex(r"\A\s*-?\d{1,13}(\.\d{1,4})?\s*\Z"),
    st.from_regex(r"\A(11|32|44)\d{4}(19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|1\d|2[0-8])\d{3}[0-9Xx]\Z"),
    st.from_regex(r"\A[1-9]\d{7}[0-9A-HJ-NPQRTUWXY]{10}\Z"),
    st.sampled_from(["true", "on", "1", "yes", "false", "off", "0", "no", "", " ", "TRUE"]),
)


@settings(max_examples=400, deadline=None)
@given(spec=specs, value=st.one_of(json_values, plausible))
def test_cleaning_a_value_fails_only_with_a_chinese_reason_and_round_trips(spec, value):
    try:
        cleaned = clean_value(spec, value)
    except FieldProblem as problem:
        assert any("\u4e00" <= ch <= "\u9fff" for ch in str(problem))
        return
    if cleaned is None:
        return
    # What is stored reads back as itself, and can be shown.
    assert clean_value(spec, cleaned) == cleaned
    assert isinstance(display_value(spec, cleaned), str)
    kind = spec["type"]
    if kind in ("number", "integer"):
        assert isinstance(cleaned, int | float) and math.isfinite(cleaned)
        assert kind == "number" or (isinstance(cleaned, int) and not isinstance(cleaned, bool))
        assert spec.get("min") is None or cleaned >= spec["min"]
        assert spec.get("max") is None or cleaned <= spec["max"]
    elif kind in ("ric", "uscc"):
        # The oracle: the check character computed from the standard (test_field_types).
        check = ric_check if kind == "ric" else uscc_check
        assert len(cleaned) == 18 and check(cleaned[:17]) == cleaned[17]
    elif kind == "checkbox":
        assert isinstance(cleaned, bool)
    elif kind == "date":
        assert date.fromisoformat(cleaned).isoformat() == cleaned
    elif kind == "select":
        assert cleaned in spec["options"]
    else:
        assert isinstance(cleaned, str) and cleaned == cleaned.strip()
        limit = spec.get("max_length") or (200 if kind == "text" else 2000)
        assert kind == "phone" or len(cleaned) <= limit
        assert kind == "phone" or len(cleaned) >= (spec.get("min_length") or 1)


@settings(max_examples=150, deadline=None)
@given(
    specs=st.lists(specs, max_size=4),
    submitted=st.dictionaries(st.sampled_from(["f0", "f1", "f2", "f3", "zz"]), json_values),
    partial=st.booleans(),
)
def test_cleaning_a_form_keys_every_problem_by_its_field(specs, submitted, partial):
    for i, spec in enumerate(specs):
        spec["name"] = f"f{i}"
        spec["required"] = i % 2 == 0
    values, errors = clean_form(specs, submitted, partial=partial)
    names = {s["name"] for s in specs}
    assert set(values) <= names & set(submitted)
    assert all(key.startswith("form.") and key[5:] in names | set(submitted) for key in errors)
    if partial:  # a value is kept, or refused with a reason, never both
        assert not set(values) & {key[5:] for key in errors}
    again, problems = clean_form(specs, values, partial=True)
    assert again == values and problems == {}


# --- signatures ---------------------------------------------------------------------------

secrets = st.text(min_size=1, max_size=40)
bodies = st.binary(max_size=300)
moments = st.integers(1_000_000_000, 4_000_000_000)


@settings(max_examples=300, deadline=None)
@given(secret=secrets, body=bodies, t=moments, skew=st.integers(-1000, 1000))
def test_a_signature_is_accepted_exactly_within_300_seconds(secret, body, t, skew):
    header = signing.sign(secret, body, now=t)
    assert signing.verify(secret, header, body, now=t + skew) == (abs(skew) <= 300)


@settings(max_examples=300, deadline=None)
@given(
    secret=secrets,
    other=secrets,
    body=bodies,
    other_body=bodies,
    t=moments,
    position=st.integers(0, 63),
    digit=st.sampled_from("0123456789abcdef"),
)
def test_only_the_exact_signature_is_accepted(secret, other, body, other_body, t, position, digit):
    mac = signing.signature(secret, body, t)
    assert signing.verify(secret, f"t={t},v1={mac}", body, now=t)
    altered = mac[:position] + digit + mac[position + 1 :]
    assume(altered != mac)
    assert not signing.verify(secret, f"t={t},v1={altered}", body, now=t)
    assert not signing.verify(secret, f"t={t},v1={mac.upper()}", body, now=t) or mac == mac.upper()
    assert not signing.verify(secret, f"t={t + 1},v1={mac}", body, now=t)
    if other != secret:
        assert not signing.verify(other, f"t={t},v1={mac}", body, now=t)
    if other_body != body:
        assert not signing.verify(secret, f"t={t},v1={mac}", other_body, now=t)
    # Rotation: a second, wrong v1 beside the right one does not spoil it.
    assert signing.verify(secret, f"t={t},v1={'0' * 64},v1={mac}", body, now=t)


@settings(max_examples=500, deadline=None)
@given(
    header=st.one_of(
        st.none(), st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1"))
    ),
    body=bodies,
)
def test_garbage_headers_are_refused_never_raise(header, body):
    assert signing.verify("secret", header, body, now=time.time()) is False


# --- the case status machine through HTTP ---------------------------------------------------

BUREAU_DATA = {
    "prereview.passed": {"comment": "材料齐全"},
    "prereview.returned": {"comment": "请补正", "materials": []},
    "case.accepted": {"acceptance_no": "SL-1", "due_date": "2027-01-15"},
    "case.rejected": {"reason": "不属于本机关职权范围"},
    # `materials` filled in per item (CaseLife.bureau): the code must be one of its own.
    "correction.requested": {"comment": "请补正", "materials": []},
    "clock.suspended": {"reason_code": "expert_review", "reason": "专家评审"},
    "clock.resumed": {},
    "deadline.extended": {"due_date": "2099-01-01", "reason": "情况复杂"},
    "inspection.scheduled": {"date": "2027-01-05"},
    "case.approved": {
        "decision_no": "JD-1",
        "licence": {
            "name": "许可证",
            "number": "XK-1",
            "valid_from": "2027-01-10",
            "filename": "licence.pdf",
            "content_type": "application/pdf",
            "sha256": hashlib.sha256(b"licence").hexdigest(),
        },
    },
    "case.denied": {"reason": "不符合条件", "remedy": "可申请行政复议"},
    "licence.ready_for_pickup": {"hall": "WJ-ZWZX", "pickup_code": "8888"},
    "licence.shipped": {"carrier": "EMS", "tracking_no": "EMS123"},
    "licence.delivered": {},
    "rating.reply": {"reply": "感谢评价"},
    "originals.received": {"received_at": "2026-12-01T09:00:00+08:00", "note": "原件齐全"},
}
# Events whose only precondition is the case's status: from a source status they must apply.
PURE = {
    "prereview.passed",
    "prereview.returned",
    "case.accepted",
    "case.rejected",
    "correction.requested",
    "inspection.scheduled",
    "case.approved",
    "case.denied",
    "licence.ready_for_pickup",
    "licence.shipped",
}
assert set(BUREAU_DATA) == {k for k, t in states.TRANSITIONS.items() if t.source == "bureau"}


CITIZEN = ["prereview", "submit", "withdraw", "edit", "correct"]


class CaseLife:
    """The model: a case's status as the table says it must be, checked after every call."""

    def __init__(self, client, auth, item: dict) -> None:
        self.client, self.auth, self.item = client, auth, item
        self.case_no = new_case(client, auth, item)["case_no"]
        fill_everything(client, auth, item, self.case_no)
        self.status = states.DRAFT
        self.applied: list[str] = []  # bureau events the portal took
        self.sent: list[bytes] = []

    def step(self, rng: random.Random) -> tuple:
        """One random step: a bureau event or a citizen's action that fits the status (two
        times in three; withdrawing, which ends a case, less often) or one that does not,
        which must be refused; now and then a replay. Drawn from a seeded generator, so
        every choice is really made: Hypothesis's own draws lean to the first option."""
        weights = [1, 6, 0] if self.status == states.DRAFT else [6, 2, 1]
        kind = rng.choices(["bureau", "citizen", "replay"], weights=weights)[0]
        fits = rng.random() < 2 / 3
        if kind == "bureau":
            keys = [
                k
                for k in sorted(BUREAU_DATA)
                if (self.status in states.TRANSITIONS[k].sources) == fits
            ] or sorted(BUREAU_DATA)
            return kind, rng.choice(keys)
        if kind == "citizen":
            actions = [a for a in CITIZEN if self.allowed(a) == fits] or CITIZEN
            weights = [1 if a in ("withdraw", "edit") else 4 for a in actions]
            return kind, rng.choices(actions, weights=weights)[0]
        return kind, rng.randrange(1000)

    def observed(self) -> dict:
        response = self.client.get(f"/api/v1/cases/{self.case_no}", headers=self.auth)
        assert response.status_code == 200
        return response.json()

    def post_event(self, body: bytes):
        return self.client.post(
            "/api/bureau/v1/events",
            content=body,
            headers={
                "Content-Type": "application/json",
                signing.BUREAU_HEADER: signing.sign(SECRET, body),
            },
        )

    def bureau(self, key: str) -> None:
        body = json.dumps(
            {
                "event_id": str(uuid.uuid4()),
                "type": key,
                "occurred_at": "2026-11-20T10:00:00+08:00",
                "case_no": self.case_no,
                "data": self.data(key),
            },
            ensure_ascii=False,
        ).encode()
        response = self.post_event(body)
        transition = states.TRANSITIONS[key]
        assert response.status_code < 500, response.text
        if self.status == states.DRAFT:
            # A draft was never sent: for the bureau it does not exist.
            assert response.status_code == 404, response.text
        elif response.status_code == 200:
            assert self.status in transition.sources, f"{key} applied from {self.status}"
            self.status = transition.target or self.status
            self.applied.append(key)
            self.sent.append(body)
        else:
            assert response.status_code == 409, response.text
            assert key not in PURE or self.status not in transition.sources, (key, self.status)

    def data(self, key: str) -> dict:
        if key == "correction.requested":
            code = self.item["materials"][0]["code"]
            return {"comment": "请补正", "materials": [{"code": code, "comment": "请盖章"}]}
        return BUREAU_DATA[key]

    def replay(self, index: int) -> None:
        if self.sent:
            response = self.post_event(self.sent[index % len(self.sent)])
            assert response.json() == {"status": "duplicate"}

    def allowed(self, action: str) -> bool:
        """What the table lets the citizen do now (a draft is withdrawn by deleting it)."""
        if action == "prereview":
            return self.item["prereview"] and self.status in (states.DRAFT, states.RETURNED)
        if action == "submit":
            return self.status == states.PASSED or (
                self.status == states.DRAFT and not self.item["prereview"]
            )
        if action == "withdraw":
            return self.status in states.TRANSITIONS["case.withdrawn"].sources | {states.DRAFT}
        if action == "correct":  # the contract: only a case the bureau asked to correct
            return self.status == "correction_required"
        return self.status in states.EDITABLE

    def citizen(self, action: str) -> None:
        allowed = self.allowed(action)
        client, auth, case = self.client, self.auth, f"/api/v1/cases/{self.case_no}"
        if action == "prereview":
            self.expect(
                client.post(f"{case}/prereview", headers=auth), 202, states.PREREVIEW, allowed
            )
        elif action == "submit":
            self.expect(
                client.post(f"{case}/submission", headers=auth), 202, states.SUBMITTED, allowed
            )
        elif action == "withdraw":
            response = client.post(f"{case}/withdrawal", json={"reason": "不办了"}, headers=auth)
            self.expect(response, 200, states.WITHDRAWN, allowed)
        elif action == "correct":
            if allowed:  # a new file for the named material first, or the answer is 422
                code = self.item["materials"][0]["code"]
                new = PDF_BYTES + b"%" + uuid.uuid4().hex.encode()
                files = {"file": ("new.pdf", new, "application/pdf")}
                posted = client.post(f"{case}/materials/{code}/files", files=files, headers=auth)
                assert posted.status_code == 201, posted.text
            self.expect(client.post(f"{case}/correction", headers=auth), 202, "submitted", allowed)
        else:
            self.expect(client.patch(case, json={"form": {}}, headers=auth), 200, None, allowed)

    def expect(self, response, ok: int, target: str | None, allowed: bool) -> None:
        assert response.status_code < 500, response.text
        if allowed:
            assert response.status_code == ok, (self.status, response.text)
            self.status = target or self.status
        else:
            assert response.status_code == 409, (self.status, response.text)


def test_random_event_sequences_follow_the_status_table(client, auth):
    items = {True: pick_item(client, prereview=True), False: pick_item(client, prereview=False)}
    reached: set[str] = set()

    @given(prereview=st.booleans(), seed=st.integers(0, 2**32 - 1))
    @settings(
        max_examples=20,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        # Every step is an HTTP call: a failing run prints its seed unshrunk, in seconds.
        phases=[Phase.explicit, Phase.generate],
    )
    def life(prereview, seed):
        case, idle = CaseLife(client, auth, items[prereview]), 0
        rng = random.Random(seed)
        for _ in range(25):
            if idle >= 3:  # a finished case has been prodded enough: file the next one
                check_timeline(case)
                case, idle = CaseLife(client, auth, items[prereview]), 0
            kind, arg = case.step(rng)
            getattr(case, kind)(arg)
            view = case.observed()
            assert view["status"] in states.ALL_STATUSES
            assert view["status"] == case.status, (kind, arg)
            reached.add(case.status)
            idle = idle + 1 if case.status in states.FINISHED else 0
        check_timeline(case)

    def check_timeline(case: CaseLife) -> None:
        # Each processed event once on the timeline; refused ones and replays never.
        timeline = [e["type"] for e in case.observed()["timeline"] if e["type"] in BUREAU_DATA]
        assert sorted(timeline) == sorted(case.applied)

    life()
    # The runs went the whole way, not just round the first statuses.
    assert {states.ACCEPTED, states.APPROVED, states.RETURNED, states.CORRECTION} <= reached, (
        reached
    )
