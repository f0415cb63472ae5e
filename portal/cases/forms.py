"""Typed validation of an item's form fields (operations.md, "Item form fields";
citizen-api.md, "Item form fields, more types").

One checker serves every place a value is entered or sent: a single case's save,
a 一件事's shared form (each value against every item that asks for it), and again
pre-review and formal submission, so that a value stored before a rule was
tightened is still refused before it reaches the bureau.
"""

from __future__ import annotations

import math
import re
import unicodedata
from datetime import date
from typing import Any

from stdnum.cn import uscc as stdnum_uscc
from stdnum.exceptions import InvalidChecksum, InvalidComponent, InvalidFormat
from stdnum.exceptions import ValidationError as StdnumError

# A 身份证号 typed into a form passes exactly when it would pass at registration.
from portal.accounts.service import _validate_ric
from portal.security import mask_id

TYPES = (
    "text",
    "textarea",
    "number",
    "integer",
    "date",
    "phone",
    "select",
    "checkbox",
    "ric",
    "uscc",
)
ID_LENGTH = 18  # 居民身份证号码 (GB 11643) and 统一社会信用代码 (GB 32100) alike
NUMBER_LIMIT = 1e12
INTEGER_RE = re.compile(r"^[+-]?\d+$", re.ASCII)
MOBILE_RE = re.compile(r"^1[3-9]\d{9}$")
LANDLINE_RE = re.compile(r"^0\d{2,3}-?\d{7,8}$")
TEXT_MAX = 200
TEXTAREA_MAX = 2000
TRUE_WORDS = {"true", "on", "1", "yes"}
FALSE_WORDS = {"false", "off", "0", "no", ""}
TEXT_KINDS = ("text", "textarea", "select", "phone", "date", "ric", "uscc")

RIC_WRONG = "请输入正确的18位居民身份证号码"
USCC_WRONG = "请输入正确的18位统一社会信用代码"


class FieldProblem(ValueError):
    """A value that does not fit its field; the message is 中文 for the citizen."""


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _compact_id(text: str) -> str:
    """Full-width characters (a Chinese input method's １２Ｘ) as ASCII, no spaces or dashes."""
    return re.sub(r"[\s\-]", "", unicodedata.normalize("NFKC", text)).upper()


def clean_value(spec: dict[str, Any], value: Any) -> Any:
    """The value in its stored type (str, int/float, bool, ISO date), or FieldProblem."""
    kind = spec["type"]
    if kind == "checkbox":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
            return value.strip().lower() in TRUE_WORDS
        raise FieldProblem("请勾选或不勾选（true/false）")
    if _is_blank(value):
        return None
    if kind in TEXT_KINDS and not isinstance(value, str):
        raise FieldProblem("应为文本")
    if kind == "number":
        return _in_range(spec, _number(value))
    if kind == "integer":
        return _in_range(spec, _integer(value))
    text = value.strip()
    if kind in ("text", "textarea"):
        return _sized(spec, text, TEXT_MAX if kind == "text" else TEXTAREA_MAX)
    if kind == "ric":
        return _ric(text)
    if kind == "uscc":
        return _uscc(text)
    if kind == "select":
        if text not in spec.get("options", []):
            raise FieldProblem("请从列出的选项中选择")
        return text
    if kind == "phone":
        compact = text.replace(" ", "")
        if not (MOBILE_RE.match(compact) or LANDLINE_RE.match(compact)):
            raise FieldProblem("请填写 11 位手机号码或带区号的固定电话，例如 0519-86312345")
        return compact
    if kind == "date":
        try:
            parsed = date.fromisoformat(text)
        except ValueError:
            raise FieldProblem("请按 YYYY-MM-DD 格式填写日期，例如 2026-12-31") from None
        if len(text) != 10 or not (1900 <= parsed.year <= 2100):
            raise FieldProblem("请按 YYYY-MM-DD 格式填写日期，例如 2026-12-31")
        return parsed.isoformat()
    raise FieldProblem("不支持的字段类型")


def _sized(spec: dict[str, Any], text: str, default_max: int) -> str:
    low, high = spec.get("min_length"), spec.get("max_length") or default_max
    if low is not None and len(text) < low:
        raise FieldProblem(f"至少填写 {low} 个字（现为 {len(text)} 个字）")
    if len(text) > high:
        raise FieldProblem(f"不能超过 {high} 个字（现为 {len(text)} 个字）")
    return text


def _ric(text: str) -> str:
    number = _compact_id(text)
    if len(number) != ID_LENGTH:
        raise FieldProblem(f"{RIC_WRONG}（现为 {len(number)} 位）")
    try:
        _validate_ric(number)
    except InvalidChecksum:
        raise FieldProblem(f"{RIC_WRONG}（校验位不符）") from None
    except InvalidFormat:
        raise FieldProblem(f"{RIC_WRONG}（前17位应为数字，末位为数字或X）") from None
    except InvalidComponent:
        raise FieldProblem(f"{RIC_WRONG}（地区码或出生日期不符）") from None
    except StdnumError:  # e.g. a birth date that does not exist
        raise FieldProblem(f"{RIC_WRONG}（地区码或出生日期不符）") from None
    return number


def _uscc(text: str) -> str:
    number = _compact_id(text)
    if len(number) != ID_LENGTH:
        raise FieldProblem(f"{USCC_WRONG}（现为 {len(number)} 位）")
    try:
        stdnum_uscc.validate(number)
    except InvalidChecksum:
        raise FieldProblem(f"{USCC_WRONG}（校验位不符）") from None
    except StdnumError:
        raise FieldProblem(
            f"{USCC_WRONG}（前8位应为数字，其余为数字或大写字母，不含 I、O、S、V、Z）"
        ) from None
    return number


def _number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise FieldProblem("请填写数字")
    if isinstance(value, int | float):
        number = value
    elif isinstance(value, str):
        try:
            number = float(value.strip().replace(",", ""))
        except ValueError:
            raise FieldProblem("请填写数字，例如 120 或 85.5") from None
    else:
        raise FieldProblem("请填写数字")
    if not math.isfinite(number) or abs(number) > NUMBER_LIMIT:
        raise FieldProblem("请填写合理的数字")
    return int(number) if float(number).is_integer() else float(number)


def _integer(value: Any) -> int:
    """A whole number: 3, "3", "1,200" or a JSON 3.0; never 1.5."""
    if isinstance(value, bool):
        raise FieldProblem("请填写整数，例如 3")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise FieldProblem("请填写整数，不能有小数，例如 3")
        number = int(value)
    elif isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = unicodedata.normalize("NFKC", value).strip().replace(",", "")
        if not INTEGER_RE.match(text):
            if re.fullmatch(r"[+-]?\d*\.\d+", text, re.ASCII):
                raise FieldProblem("请填写整数，不能有小数，例如 3")
            raise FieldProblem("请填写整数，例如 3")
        if len(text) > 13:
            raise FieldProblem("请填写合理的数字")
        number = int(text)
    else:
        raise FieldProblem("请填写整数，例如 3")
    if abs(number) > NUMBER_LIMIT:
        raise FieldProblem("请填写合理的数字")
    return number


def _in_range(spec: dict[str, Any], number: int | float) -> int | float:
    if spec.get("min") is not None and number < spec["min"]:
        raise FieldProblem(f"不能小于 {spec['min']:g}")
    if spec.get("max") is not None and number > spec["max"]:
        raise FieldProblem(f"不能大于 {spec['max']:g}")
    return number


def problem_text(spec: dict[str, Any], problem: FieldProblem) -> str:
    """The reason with the field's label, so a list of problems names each field."""
    return f"{spec['label']}：{problem}"


def clean_form(
    specs: list[dict[str, Any]], submitted: dict[str, Any], *, partial: bool
) -> tuple[dict[str, Any], dict[str, str]]:
    """Clean every submitted value; with `partial=False` required fields must be present.

    Returns the cleaned values (blank ones dropped) and the problems keyed `form.<name>`,
    in the order of the fields on the page (unknown names last).
    """
    by_name = {s["name"]: s for s in specs}
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, raw in submitted.items():
        spec = by_name.get(name)
        if spec is None:
            errors[f"form.{name}"] = "本事项没有这个字段"
            continue
        try:
            cleaned = clean_value(spec, raw)
        except FieldProblem as exc:
            errors[f"form.{name}"] = problem_text(spec, exc)
            continue
        if cleaned is not None:
            values[name] = cleaned
    if not partial:
        errors.update(missing_fields(specs, values))
    return values, in_field_order(specs, errors)


def in_field_order(specs: list[dict[str, Any]], errors: dict[str, str]) -> dict[str, str]:
    """`form.<name>` problems in the fields' order; any other key keeps its place after them."""
    position = {f"form.{s['name']}": i for i, s in enumerate(specs)}
    ranked = sorted(errors, key=lambda key: position.get(key, len(position)))
    return {key: errors[key] for key in ranked}


def missing_fields(specs: list[dict[str, Any]], values: dict[str, Any]) -> dict[str, str]:
    """Required fields without a value (a required checkbox must be ticked)."""
    problems = {}
    for spec in specs:
        if not spec.get("required"):
            continue
        value = values.get(spec["name"])
        if spec["type"] == "checkbox":
            if value is not True:
                problems[f"form.{spec['name']}"] = f"请勾选“{spec['label']}”"
        elif _is_blank(value):
            problems[f"form.{spec['name']}"] = f"请填写“{spec['label']}”"
    return problems


def form_problems(specs: list[dict[str, Any]], values: dict[str, Any]) -> dict[str, str]:
    """Before anything is sent: every stored value checked again by its field, and every
    required field present, in the fields' order.

    A value saved under an older catalogue (or written behind the checker's back) that no
    longer fits is refused here like a new one, so it never reaches the bureau.
    """
    problems: dict[str, str] = {}
    for spec in specs:
        name = spec["name"]
        if name not in values:
            continue
        try:
            clean_value(spec, values[name])
        except FieldProblem as exc:
            problems[f"form.{name}"] = problem_text(spec, exc)
    for key, message in missing_fields(specs, values).items():
        problems.setdefault(key, message)
    return in_field_order(specs, problems)


# --- a 一件事's one form: a shared field obeys every item's rules ------------------------

_STRICTER = {  # a field typed differently by two items: the narrower type asks the question
    frozenset({"number", "integer"}): "integer",
    frozenset({"text", "textarea"}): "text",
    frozenset({"text", "ric"}): "ric",
    frozenset({"text", "uscc"}): "uscc",
}


def merge_specs(specs: list[dict[str, Any]]) -> dict[str, Any]:
    """One field asked once for several items: the union of their rules (the highest
    minimum, the lowest maximum, the options every item accepts, required if any
    item requires it). The value is still checked against each item's own field."""
    merged = dict(specs[0])
    for spec in specs[1:]:
        if spec["type"] != merged["type"]:
            pair = frozenset({spec["type"], merged["type"]})
            merged["type"] = _STRICTER.get(pair, merged["type"])
        merged["required"] = bool(merged.get("required") or spec.get("required"))
        for key, tighter in (("min", max), ("min_length", max), ("max", min), ("max_length", min)):
            ours, theirs = merged.get(key), spec.get(key)
            if theirs is not None:
                merged[key] = theirs if ours is None else tighter(ours, theirs)
        if spec.get("options") and merged.get("options"):
            merged["options"] = [o for o in merged["options"] if o in spec["options"]]
        merged["hint"] = merged.get("hint") or spec.get("hint", "")
    return merged


def display_value(spec: dict[str, Any], value: Any) -> str:
    """How a stored value reads on the check-your-answers page."""
    if spec["type"] == "checkbox":
        return "是" if value is True else "否"
    if value is None or value == "":
        return "未填写"
    if spec["type"] in ("ric", "uscc"):
        return mask_id(str(value))  # numbers are masked on pages; the form shows them whole
    if spec["type"] == "date":
        d = date.fromisoformat(value)
        return f"{d.year}年{d.month}月{d.day}日"
    return str(value)
