"""The carriers an applicant may post originals with, their waybill formats and query pages.

One table serves both directions: the applicant's waybill number is checked against it,
and a carrier the bureau names in `licence.shipped` (free text such as "EMS" or
"顺丰速运") is matched by name to offer its query page. The query pages are the
carriers' public ones; check them before going live (docs/catalogue-sources.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True)
class Carrier:
    code: str
    name: str
    formats: tuple[re.Pattern[str], ...]
    example: str  # shown in the hint and in the error message
    url: str  # the public query page, "{no}" replaced by the waybill number
    aliases: tuple[str, ...] = ()


def _re(*patterns: str) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p) for p in patterns)


CARRIERS: dict[str, Carrier] = {
    c.code: c
    for c in (
        # EMS: 13 digits for domestic mail, or the UPU S10 form (2 letters, 9 digits, CN).
        Carrier(
            "EMS",
            "中国邮政 EMS",
            _re(r"1\d{12}", r"[A-Z]{2}\d{9}CN"),
            "1012345678901 或 EA123456789CN",
            "https://www.ems.com.cn/queryList?mailNum={no}",
            ("ems", "中国邮政ems", "邮政ems", "中国邮政速递", "邮政速递", "中国邮政速递物流"),
        ),
        Carrier(
            "CNPOST",
            "中国邮政快递包裹",
            _re(r"9\d{12}", r"[A-Z]{2}\d{9}CN"),
            "9812345678901",
            "https://www.ems.com.cn/queryList?mailNum={no}",
            ("中国邮政", "邮政", "邮政包裹", "邮政快递包裹", "cnpost", "chinapost"),
        ),
        Carrier(
            "SF",
            "顺丰速运",
            _re(r"SF\d{13}"),
            "SF1234567890123",
            "https://www.sf-express.com/chn/sc/waybill/waybill-detail/{no}",
            ("sf", "顺丰", "顺丰快递", "顺丰速递"),
        ),
        Carrier(
            "JD",
            "京东快递",
            _re(r"JD[0-9A-Z]{13}"),
            "JDVA12345678901",
            "https://www.jdl.com/orderSearch/?waybillCodes={no}",
            ("jd", "京东", "京东物流"),
        ),
    )
}
CHOICES = [(c.code, c.name) for c in CARRIERS.values()]
_SPACES = re.compile(r"[\s\-]")


def normalise_tracking(value: str) -> str:
    """People copy numbers with spaces and hyphens, in lower case: the characters count."""
    return _SPACES.sub("", value).upper()


def tracking_error(carrier: str, tracking_no: str) -> str | None:
    """Why `tracking_no` is not a waybill number of `carrier` (None when it is)."""
    spec = CARRIERS.get(carrier)
    if spec is None:
        return None
    if not tracking_no:
        return "请填写快递单号（运单号）"
    if not any(p.fullmatch(tracking_no) for p in spec.formats):
        return f"{spec.name}的单号格式不对，应类似 {spec.example}，请对照快递底单重新填写"
    return None


def find_carrier(name: str | None) -> Carrier | None:
    """The carrier a code or a name means, e.g. "EMS", "中国邮政EMS", "顺丰速运"."""
    if not name:
        return None
    key = _SPACES.sub("", name).lower()
    for spec in CARRIERS.values():
        if key in (spec.code.lower(), _SPACES.sub("", spec.name).lower(), *spec.aliases):
            return spec
    return None


def tracking_url(carrier: str | None, tracking_no: str | None) -> str | None:
    """The carrier's public query page for this waybill, when the carrier is one we know."""
    spec = find_carrier(carrier)
    if spec is None or not tracking_no:
        return None
    return spec.url.format(no=quote(tracking_no, safe=""))


def carrier_name(carrier: str | None) -> str:
    spec = find_carrier(carrier)
    return spec.name if spec else (carrier or "")
