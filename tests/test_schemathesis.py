"""Every operation of /openapi.json, fuzzed in process with an authenticated account:
no 5xx, every answer documented and matching its schema (docs/citizen-api.md).

Three passes per operation: data that fits the schema, data that does not (where
anything can break it), and (for operations under a case, a material or a file)
fitting data aimed at the account's own real case, so the checks reach past the 404
of a random id.
Examples are derandomised so CI is repeatable; PORTAL_FUZZ_EXAMPLES raises the
count for a deeper run on a workstation.
"""

from __future__ import annotations

import os
import re

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import PDF_BYTES, bearer, pick_item
from tests.factories import new_case, upload

EXAMPLES = int(os.environ.get("PORTAL_FUZZ_EXAMPLES", "5"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def run_operation(operation, mode: GenerationMode, auth: dict, pins: dict | None) -> None:
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=pins))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    def fuzz(case) -> None:
        response = case.call(headers=auth)
        case.validate_response(response, checks=CHECKS)

    fuzz()


def nothing_to_break(spec: dict, method: str, path: str) -> bool:
    """No body, no query, header or cookie parameter, and only unconstrained string path
    parameters: no request to this operation breaks its schema (a path segment is always a
    string). Hypothesis would look for one for ~250 tries before it gives up (measured:
    half the test's time, on 26 of the API's operations)."""
    definition = spec["paths"][path][method.lower()]
    if "requestBody" in definition:
        return False
    for parameter in definition.get("parameters", []):
        schema = {k: v for k, v in parameter.get("schema", {}).items() if k != "title"}
        if parameter["in"] != "path" or schema != {"type": "string"}:
            return False
    return True


# Operations that end the caller's login: fuzzed with a token of their own, so the rest
# of the walk keeps its account.
LOGS_OUT = {("DELETE", "/api/v1/tokens")}


def test_api_never_fails_and_always_answers_as_documented(app, client, person, auth):
    item = pick_item(client, prereview=True)
    case_no = new_case(client, auth, item)["case_no"]
    material = item["materials"][0]["code"]
    file_id = upload(client, auth, case_no, material, PDF_BYTES).json()["id"]
    own = {"case_no": case_no, "material_code": material, "file_id": file_id, "code": item["code"]}

    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    spec = app.openapi()
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        names = re.findall(r"{(\w+)}", operation.path)
        pins = {name: own[name] for name in names if name in own}
        passes = [("positive", GenerationMode.POSITIVE, None)]
        if not nothing_to_break(spec, operation.method, operation.path):
            passes.append(("negative", GenerationMode.NEGATIVE, None))
        if pins:
            passes.append(("own case", GenerationMode.POSITIVE, pins))
        caller = auth
        if (operation.method.upper(), operation.path) in LOGS_OUT:
            caller = bearer(client, person)
        for label, mode, pinned in passes:
            try:
                run_operation(operation, mode, caller, pinned)
            except Unsatisfiable:
                continue  # nothing to make invalid that nothing_to_break did not foresee
            except BaseException as exc:  # schemathesis raises an exception group
                if isinstance(exc, KeyboardInterrupt):
                    raise
                failures[f"{operation.label} [{label}]"] = str(exc)[:3000]
    assert operations >= 40  # the whole API was walked, not an empty schema
    assert not failures, "\n\n".join(f"== {k}\n{v}" for k, v in failures.items())


def test_malformed_json_is_a_422_about_the_body(client, auth):
    for raw in (b"\xff\xfe{", b'{"item_code": ', b"B\xcf\x86", b"[1, 2"):
        response = client.post(
            "/api/v1/cases", content=raw, headers={**auth, "Content-Type": "application/json"}
        )
        assert response.status_code == 422, (raw, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid" and error["message"] == "请求体不是有效的 JSON。"
        assert list(error["fields"]) == ["body"], error
