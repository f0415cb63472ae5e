"""Demo identities of the reference platform: persons and legal persons of levels 2–4.

Every ID number is made with its national check digit (python-stdnum: GB 11643 for
居民身份证, GB 32100 for 统一社会信用代码), so relying parties' checks pass as they
would on real numbers. Nothing here is a real person or enterprise.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from stdnum.cn import ric, uscc


def make_ric(first17: str) -> str:
    """A 居民身份证号码 from its first 17 digits (stdnum computes the check digit)."""
    return ric.validate(first17 + ric.calc_check_digit(first17 + "0"))


def make_uscc(first17: str) -> str:
    """A 统一社会信用代码 from its first 17 characters."""
    return uscc.validate(first17 + uscc.calc_check_digit(first17))


@dataclass(frozen=True)
class Identity:
    key: str  # what the login page posts; also the seed of `sub`
    name: str
    subject_type: str  # "person" | "legal_person"
    id_number: str
    level: int
    phone: str  # 11-digit national number; claims carry E.164
    password: str
    phone_verified: bool = True
    legal_rep: str | None = None
    operator: tuple[str, str] | None = None  # (name, id_number) of who signs in for it
    method: str = field(default="")

    @property
    def sub(self) -> str:
        # Stable and opaque, like a platform's: not the ID number itself.
        return hashlib.sha256(f"xzsp-demo-idp:{self.key}".encode()).hexdigest()[:32]

    @property
    def id_type(self) -> str:
        return "RIC" if self.subject_type == "person" else "USCC"

    def claims(self) -> dict[str, Any]:
        """The claims of identity.md §2 for this subject."""
        claims: dict[str, Any] = {
            "sub": self.sub,
            "name": self.name,
            "cn_subject_type": self.subject_type,
            "cn_id_type": self.id_type,
            "cn_id_number": self.id_number,
            "cn_trust_level": self.level,
            "phone_number": "+86" + self.phone,
            "phone_number_verified": self.phone_verified,
        }
        if self.subject_type == "legal_person":
            claims["cn_legal_rep"] = {"name": self.legal_rep}
            if self.operator:
                claims["cn_operator"] = {"name": self.operator[0], "id_number": self.operator[1]}
        return claims


LEVEL_METHODS = {
    2: "实名核验（公安人口库 / 市场主体登记库）",
    3: "实名核验 + 人脸识别 / 电子营业执照",
    4: "实名核验 + 现场核验 / 数字证书",
}

DEMO_IDENTITIES: tuple[Identity, ...] = (
    Identity(
        "zhangwei",
        "张伟",
        "person",
        make_ric("32042119850612123"),
        2,
        "13951000201",
        "zhangwei2026",
    ),
    Identity("lina", "李娜", "person", make_ric("32042119900307246"), 3, "13951000302", "lina2026"),
    Identity(
        "wangfang",
        "王芳",
        "person",
        make_ric("32042119880921368"),
        4,
        "13951000403",
        "wangfang2026",
    ),
    Identity(
        "liuyang",
        "刘洋",
        "person",
        make_ric("32048319951130417"),
        2,
        "13951000204",
        "liuyang2026",
        phone_verified=False,
    ),
    Identity(
        "yuanfeng",
        "常州远丰农业科技有限公司",
        "legal_person",
        make_uscc("91320412MA1MXQ3R7"),
        2,
        "13951000505",
        "yuanfeng2026",
        legal_rep="周建国",
        operator=("张伟", make_ric("32042119850612123")),
    ),
    Identity(
        "huimin",
        "武进惠民餐饮有限公司",
        "legal_person",
        make_uscc("91320412MA1NB7K25"),
        3,
        "13951000606",
        "huimin2026",
        legal_rep="陈秀英",
        operator=("陈秀英", make_ric("32042119840415222")),
    ),
    Identity(
        "jianan",
        "江苏嘉南建设工程有限公司",
        "legal_person",
        make_uscc("91320412MA1PC8L43"),
        4,
        "13951000707",
        "jianan2026",
        legal_rep="王芳",
        operator=("李娜", make_ric("32042119900307246")),
    ),
)

BY_KEY = {identity.key: identity for identity in DEMO_IDENTITIES}
BY_SUB = {identity.sub: identity for identity in DEMO_IDENTITIES}
