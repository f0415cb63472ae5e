"""Citizens' files in the staff console run no script: the case page frames each PDF and
image, and a file that slipped past the portal's check must not act with a clerk's session."""

from __future__ import annotations

from tests.bureau.bureau_testkit import PNG_BYTES, Bureau, staff_login


def _directives(policy: str) -> dict[str, str]:
    parts = (part.strip().split(None, 1) for part in policy.split(";") if part.strip())
    return {p[0]: (p[1] if len(p) > 1 else "") for p in parts}


def test_a_framed_pdf_may_run_no_script_and_fetch_nothing(bureau: Bureau) -> None:
    staff_login(bureau)
    case_no = bureau.new_case()
    scan = bureau.case(case_no)["materials"][0]["files"][0]
    page = bureau.client.get(f"/staff/cases/{case_no}")
    assert f"/staff/files/{scan['sha256']}" in page.text  # what the page frames

    served = bureau.client.get(f"/staff/files/{scan['sha256']}?name=scan.pdf")
    assert served.status_code == 200
    assert served.headers["content-type"] == "application/pdf"
    policy = _directives(served.headers["content-security-policy"])
    assert policy["default-src"] == "'none'"  # no script-src: falls back to none
    assert "script-src" not in policy and "unsafe" not in served.headers["content-security-policy"]
    assert policy["frame-ancestors"] == "'self'"  # the case page may frame it, nobody else
    assert policy["object-src"] == "'self'"  # Chrome's PDF viewer is a plugin
    assert served.headers["x-content-type-options"] == "nosniff"


def test_an_image_or_a_download_is_sandboxed_as_well(bureau: Bureau) -> None:
    staff_login(bureau)
    photo = bureau.put_blob(PNG_BYTES, "image/png")
    other = bureau.put_blob(b"<html><script>alert(1)</script></html>", "text/html")
    for blob, kind in ((photo, "image/png"), (other, "application/octet-stream")):
        served = bureau.client.get(f"/staff/files/{blob['sha256']}")
        assert served.status_code == 200
        assert served.headers["content-type"].startswith(kind)
        policy = _directives(served.headers["content-security-policy"])
        assert "sandbox" in policy and policy["default-src"] == "'none'"
        assert policy["object-src"] == "'none'"
