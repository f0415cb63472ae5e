"""Shapes of the portal's events (docs/bureau-protocol.md), validated with 中文 field errors.

Unknown fields are ignored, so a portal that adds fields later still interoperates.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from bureau.clock import parse_rfc3339
from bureau.errors import InvalidEvent


def _id_text(value: Any) -> Any:
    # Ids may come as JSON numbers or strings; both are kept as text here.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


Text = Annotated[str, StringConstraints(max_length=4000)]
Required = Annotated[str, StringConstraints(min_length=1, max_length=400)]
Code = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Ref = Annotated[str, BeforeValidator(_id_text), StringConstraints(min_length=1, max_length=100)]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Envelope(_Model):
    event_id: Ref
    type: Code
    occurred_at: datetime
    case_no: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None
    data: dict[str, Any]

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _rfc3339(cls, value: Any) -> datetime:
        try:
            return parse_rfc3339(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                "时间格式应为带时区的 RFC 3339，例如 2026-11-22T10:00:00+08:00"
            ) from exc


class Item(_Model):
    code: Code
    name: Required


class Agent(_Model):
    name: Required
    id_number: Required
    phone: Text = ""


class Applicant(_Model):
    kind: Literal["person", "enterprise"]
    name: Required
    id_type: Literal["RIC", "USCC"]
    id_number: Required
    phone: Text = ""
    agent: Agent | None = None


class FileRef(_Model):
    filename: Required
    content_type: Required
    size: int = Field(ge=0)
    sha256: Sha256


class ProvidedBy(_Model):
    """A material another case of the same 一件事 bundle issues (材料内部共享)."""

    case_no: Code
    item_code: Code = ""
    licence: Text = ""


class Material(_Model):
    code: Code
    name: Text = ""
    deferred: bool = False
    due_date: date | None = None
    files: list[FileRef] = []
    provided_by: ProvidedBy | None = None


class Commitment(_Model):
    text: Text
    signed_at: datetime
    kind: Literal["rongque", "gaozhi"] | None = None
    deferred_materials: list[Code] = []
    replaced_materials: list[Code] = []  # 告知承诺: proofs the promise stands in for


class Address(_Model):
    recipient: Required
    phone: Required
    province: Required
    city: Required
    district: Required
    detail: Required
    postcode: Text | None = None


class Hall(_Model):
    code: Code
    name: Text = ""


class Delivery(_Model):
    method: Literal["pickup", "express"]
    # A hall code; a {code, name} object is tolerated, as the refinements allow.
    hall: Code | Hall | None = None
    address: Address | None = None

    @model_validator(mode="after")
    def _complete(self) -> Delivery:
        if self.method == "pickup" and self.hall is None:
            raise ValueError("自取时须指明领取大厅 hall")
        if self.method == "express" and self.address is None:
            raise ValueError("邮寄时须填写收件地址 address")
        return self


class OriginalMaterial(_Model):
    code: Code
    name: Text = ""


class OriginalsPosted(_Model):
    """材料寄递 (docs/bureau-protocol.md refinement): how the originals come."""

    method: Literal["courier_pickup", "dropoff", "counter"]
    carrier: Code | None = None
    tracking_no: Annotated[str, StringConstraints(min_length=1, max_length=40)] | None = None
    address: Address | None = None
    hall: Code | Hall | None = None
    materials: list[OriginalMaterial] = []

    @model_validator(mode="after")
    def _complete(self) -> OriginalsPosted:
        if self.method != "counter" and (not self.carrier or not self.tracking_no):
            raise ValueError("邮寄原件须写明快递公司 carrier 和快递单号 tracking_no")
        if self.method == "courier_pickup" and self.address is None:
            raise ValueError("上门取件须填写取件地址 address")
        if self.method == "counter" and self.hall is None:
            raise ValueError("窗口递交须指明大厅 hall")
        return self


class Bundle(_Model):
    code: Code
    name: Text = ""
    cases: list[Code] = []


class NamedLicence(_Model):
    number: Code
    name: Text = ""
    valid_from: date | None = None
    valid_to: date | None = None


class Application(_Model):
    """v1.1: what is applied for; every kind but `new` names the licence it is about."""

    kind: Literal["new", "renewal", "change", "cancellation", "reissue"] = "new"
    licence: NamedLicence | None = None

    @model_validator(mode="after")
    def _names_licence(self) -> Application:
        if self.kind != "new" and self.licence is None:
            raise ValueError("延续、变更、注销、补办须写明所涉证照（licence.number）")
        return self


class CaseSubmitted(_Model):
    stage: Literal["prereview", "formal"]
    round: int = Field(default=1, ge=1)
    item: Item
    applicant: Applicant
    form: dict[str, Any] = {}
    materials: list[Material] = []
    commitment: Commitment | None = None
    delivery: Delivery | None = None
    bundle: Bundle | None = None
    application: Application | None = None


class CaseWithdrawn(_Model):
    reason: Text = ""


class RatingSubmitted(_Model):
    level: int = Field(ge=1, le=5)
    code: int | None = Field(default=None, ge=1, le=5)
    comment: Text | None = None

    @model_validator(mode="after")
    def _consistent(self) -> RatingSubmitted:
        if self.code is not None and self.code != 6 - self.level:
            raise ValueError("code 应等于 6 − level（GB/T 39046 好差评编码）")
        if self.level <= 2 and not (self.comment or "").strip():
            raise ValueError("不满意或非常不满意的评价须填写 comment")
        return self


class MaterialsSupplemented(_Model):
    materials: list[Material] = Field(min_length=1)


class CaseCorrected(_Model):
    """补正 handed in: the named materials as they now stand, and the whole form."""

    round: int = Field(ge=1)
    materials: list[Material] = Field(min_length=1)
    form: dict[str, Any] = {}


class AppointmentBooked(_Model):
    appointment_id: Ref
    purpose: Literal["visit", "pickup"]
    hall: Hall
    window: Annotated[str, BeforeValidator(_id_text), StringConstraints(max_length=40)] = ""
    date: date
    period: Literal["am", "pm"]


class AppointmentCancelled(_Model):
    appointment_id: Ref


class Contact(_Model):
    name: Text = ""
    phone: Text = ""


class ConsultationSubmitted(_Model):
    consultation_id: Ref
    kind: Literal["consult", "complaint"]
    subject: Required
    body: Annotated[str, StringConstraints(min_length=1, max_length=10000)]
    contact: Contact = Contact()


_MESSAGES = {
    "missing": "缺少此项",
    "string_too_short": "不能为空",
    "string_too_long": "内容过长",
    "string_pattern_mismatch": "格式不正确",
    "literal_error": "取值不在允许范围内",
    "greater_than_equal": "数值过小",
    "less_than_equal": "数值过大",
    "too_short": "至少需要一项",
    "date_from_datetime_inexact": "日期格式应为 YYYY-MM-DD",
    "date_from_datetime_parsing": "日期格式应为 YYYY-MM-DD",
    "date_parsing": "日期格式应为 YYYY-MM-DD",
    "date_type": "日期格式应为 YYYY-MM-DD",
    "datetime_from_date_parsing": "时间格式应为带时区的 RFC 3339",
    "datetime_parsing": "时间格式应为带时区的 RFC 3339",
    "datetime_type": "时间格式应为带时区的 RFC 3339",
}


def chinese_fields(exc: ValidationError, prefix: str = "") -> dict[str, str]:
    """Each failing field (dotted path) with a 中文 reason."""
    fields: dict[str, str] = {}
    for error in exc.errors(include_url=False):
        path = ".".join(str(part) for part in (prefix, *error["loc"]) if part != "")
        kind = error["type"]
        if kind == "value_error":
            reason = str(error.get("ctx", {}).get("error", "格式不正确"))
        elif kind.endswith("_type") and kind not in _MESSAGES:
            reason = "类型不正确"
        else:
            reason = _MESSAGES.get(kind, "格式不正确")
        fields.setdefault(path or prefix or "body", reason)
    return fields


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], value: Any, *, prefix: str) -> M:
    """Validate `value` as `model` or raise 422 `invalid_event` with 中文 field reasons."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise InvalidEvent(chinese_fields(exc, prefix)) from None
