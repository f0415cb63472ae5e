"""The bundled catalogue file format, and the catalogue's API answers."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Domain = Literal["market", "investment", "social", "other"]
# citizen-api.md, "Item form fields, more types"; portal/cases/forms.py checks each value.
FieldType = Literal[
    "text", "textarea", "number", "integer", "date", "phone", "select", "checkbox", "ric", "uscc"
]
LENGTH_TYPES = ("text", "textarea")  # min_length / max_length
RANGE_TYPES = ("number", "integer")  # min / max
STEP_NAMES = ("申请", "受理", "审查", "现场核查", "决定", "送达")
DOMAIN_LABELS = {
    "market": "市场准入",
    "investment": "投资建设",
    "social": "社会事业",
    "other": "其他",
}
FIELD_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class WindowSpec(_Strict):
    number: int = Field(ge=1)
    name: str
    purpose: Literal["visit", "pickup"]
    daily_capacity: int = Field(ge=1)


class HallSpec(_Strict):
    code: str = Field(pattern=r"^[A-Z0-9-]{2,32}$")
    name: str
    address: str
    hours: str = ""
    phone: str = ""
    windows: list[WindowSpec] = []
    # Who pays for posting the licence (证照寄递), as the hall states it; shown beside 快递寄送.
    postage: str = ""


class MaterialSpec(_Strict):
    code: str = Field(pattern=r"^[A-Z0-9]{1,16}$")
    kind: str = Field(pattern=r"^[a-z][a-z0-9_]{0,40}$")
    name: str
    required: bool
    deferrable: bool = False
    copies: int = Field(default=1, ge=1)
    note: str = ""
    source: str = ""
    # The bureau must see the original (原件核验) even when the scan is filed online: the
    # applicant posts it (材料寄递) or brings it (portal/originals).
    original: bool = False
    # The blank form to fill in (空白表格) and a filled-in sample (样表) or picture (示例图),
    # where the catalogue has one: a file under static/ (/static/...) or the issuer's https page.
    blank_form: str = Field(
        default="", pattern=r"^(/static/[a-z0-9/_-]+\.(pdf|png|jpg)|https://\S+)?$"
    )
    sample: str = Field(default="", pattern=r"^(/static/[a-z0-9/_-]+\.(pdf|png|jpg)|https://\S+)?$")


class FieldSpec(_Strict):
    name: str = Field(pattern=FIELD_NAME_RE.pattern)
    label: str
    type: FieldType
    required: bool = False
    hint: str = ""
    options: list[str] = []
    min: float | None = None
    max: float | None = None
    min_length: int | None = Field(default=None, ge=1)
    max_length: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _rules_fit_the_type(self) -> FieldSpec:
        if self.type == "select" and not self.options:
            raise ValueError(f"select field {self.name} needs options")
        if self.options and self.type != "select":
            raise ValueError(f"field {self.name}: only a select field has options")
        if (self.min is not None or self.max is not None) and self.type not in RANGE_TYPES:
            raise ValueError(f"field {self.name}: min/max are for {RANGE_TYPES}")
        lengths = self.min_length is not None or self.max_length is not None
        if lengths and self.type not in LENGTH_TYPES:
            raise ValueError(f"field {self.name}: min_length/max_length are for {LENGTH_TYPES}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"field {self.name}: min exceeds max")
        if self.min_length and self.max_length and self.min_length > self.max_length:
            raise ValueError(f"field {self.name}: min_length exceeds max_length")
        if self.type == "integer" and any(
            b is not None and not float(b).is_integer() for b in (self.min, self.max)
        ):
            raise ValueError(f"integer field {self.name}: min/max must be whole numbers")
        return self


class StepSpec(_Strict):
    name: str
    description: str = ""

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in STEP_NAMES:
            raise ValueError(f"step {v!r} is not one of {STEP_NAMES}")
        return v


class CommitmentSpec(_Strict):
    text: str


class RenewalWindowSpec(_Strict):
    """When a renewal (延续) may be applied for, counted back from the licence's expiry."""

    opens: int = Field(ge=1, le=400)
    closes: int = Field(default=0, ge=0, le=400)
    unit: Literal["working_days", "days"] = "days"
    source: str = ""  # the rule it comes from (docs/catalogue-sources.md)


ApplicationKind = Literal["renewal", "change", "cancellation", "reissue"]


class ApplicationKindSpec(_Strict):
    """One application about an issued licence (延续/变更/注销/补办): its own form,
    materials and time limits, from the rule it comes from (docs/catalogue-sources.md)."""

    name: str = ""  # shown as the case's item name; default: 食品经营许可（延续）
    materials: list[MaterialSpec] = Field(min_length=1)
    fields: list[FieldSpec] = []
    legal_days: int = Field(ge=0)
    promised_days: int = Field(ge=0)
    prereview: bool = False
    source: str = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> ApplicationKindSpec:
        if self.promised_days > self.legal_days:
            raise ValueError("promised_days exceeds legal_days")
        if len({m.code for m in self.materials}) != len(self.materials):
            raise ValueError("duplicate material codes")
        if len({f.name for f in self.fields}) != len(self.fields):
            raise ValueError("duplicate field names")
        return self


class LicenceSpec(_Strict):
    name: str
    valid_years: int | None = None
    renewal: RenewalWindowSpec | None = None
    # The applications the item offers about its licence, by kind (portal.licences.kinds).
    kinds: dict[ApplicationKind, ApplicationKindSpec] = {}

    @model_validator(mode="after")
    def _renewal_has_window(self) -> LicenceSpec:
        if ("renewal" in self.kinds) != (self.renewal is not None):
            raise ValueError("a renewal kind and its window (licence.renewal) go together")
        if self.renewal is not None and self.renewal.closes >= self.renewal.opens:
            raise ValueError("the renewal window must open before it closes")
        return self


class ItemSpec(_Strict):
    code: str = Field(pattern=r"^(SC|TZ|SH|QT)\d{4}$")
    name: str
    domain: Domain
    category: str = "行政许可"
    department: str
    origin_department: str = ""
    basis: list[str] = Field(min_length=1)
    conditions: list[str] = []
    materials: list[MaterialSpec] = []
    fields: list[FieldSpec] = []
    steps: list[StepSpec] = []
    legal_days: int = Field(ge=0)
    promised_days: int = Field(ge=0)
    fee: str = "不收费"
    visits: int = Field(default=0, ge=0)
    online: bool = True
    prereview: bool = False
    express: bool = False
    commitment: CommitmentSpec | None = None
    halls: list[str] = []
    licence: LicenceSpec | None = None
    consult_phone: str = ""
    sources: list[str] = []
    # Everyday words people search with (饭店, 施工证, 砍树); docs/catalogue-sources.md.
    keywords: list[str] = Field(default=[], max_length=40)

    @field_validator("keywords")
    @classmethod
    def _keywords(cls, v: list[str]) -> list[str]:
        cleaned = [k.strip() for k in v]
        for k in cleaned:
            if not 1 <= len(k) <= 20 or any(c.isspace() for c in k):
                raise ValueError(f"keyword {k!r} must be 1-20 characters without spaces")
        if len({k.lower() for k in cleaned}) != len(cleaned):
            raise ValueError("duplicate keywords")
        return cleaned

    @model_validator(mode="after")
    def _consistent(self) -> ItemSpec:
        if self.promised_days > self.legal_days:
            raise ValueError(f"{self.code}: promised_days exceeds legal_days")
        codes = [m.code for m in self.materials]
        if len(set(codes)) != len(codes):
            raise ValueError(f"{self.code}: duplicate material codes")
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.code}: duplicate field names")
        return self


class BundleSpec(_Strict):
    code: str = Field(pattern=r"^[a-z0-9-]{2,32}$")
    name: str
    description: str = ""
    items: list[str] = Field(min_length=2)
    sources: list[str] = []


class CatalogueFile(_Strict):
    version: str = ""
    halls: list[HallSpec] = []
    items: list[ItemSpec]
    bundles: list[BundleSpec] = []

    @model_validator(mode="after")
    def _references(self) -> CatalogueFile:
        halls = {h.code for h in self.halls}
        items = {i.code for i in self.items}
        for item in self.items:
            if missing := set(item.halls) - halls:
                raise ValueError(f"{item.code}: unknown halls {sorted(missing)}")
        for bundle in self.bundles:
            if missing := set(bundle.items) - items:
                raise ValueError(f"bundle {bundle.code}: unknown items {sorted(missing)}")
        return self


# --- API answers -----------------------------------------------------------------


class ItemSummaryOut(BaseModel):
    code: str
    name: str
    domain: Domain
    department: str
    promised_days: int
    legal_days: int
    visits: int = Field(description="到现场次数; 0 = 不见面")
    online: bool
    prereview: bool
    express: bool
    fee: str


class ItemListOut(BaseModel):
    items: list[ItemSummaryOut]


class MaterialOut(BaseModel):
    code: str
    name: str
    kind: str
    required: bool
    deferrable: bool
    copies: int
    note: str
    original: bool = Field(
        default=False, description="the bureau checks the original (原件核验): post it or bring it"
    )


class FieldOut(BaseModel):
    name: str
    label: str
    type: FieldType
    required: bool
    hint: str = ""
    options: list[str] = []
    min: float | None = None
    max: float | None = None
    min_length: int | None = None
    max_length: int | None = None


class StepOut(BaseModel):
    name: str
    description: str


class HallOut(BaseModel):
    code: str
    name: str
    address: str
    hours: str = ""
    phone: str = ""
    postage: str = Field(default="", description="who pays for posting the licence (证照寄递)")


class ItemOut(ItemSummaryOut):
    category: str
    origin_department: str
    basis: list[str]
    conditions: list[str]
    materials: list[MaterialOut]
    fields: list[FieldOut]
    steps: list[StepOut]
    halls: list[HallOut]
    commitment: str | None = Field(description="告知承诺书 text for items under 告知承诺制")
    licence_name: str
    licence_valid_years: int | None
    consult_phone: str
