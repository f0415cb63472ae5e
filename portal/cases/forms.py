"""Typed validation of an item's form fields (operations.md, "Item form fields")."""

from __future__ import annotations

import math
import re
from datetime import date
from typing import Any

from portal.security import mask_id

MOBILE_RE = re.compile(r"^1[3-9]\d{9}$")
LANDLINE_RE = re.compile(r"^0\d{2,3}-?\d{7,8}$")
TEXT_MAX = 200
TEXTAREA_MAX = 2000
TRUE_WORDS = {"true", "on", "1", "yes"}
FALSE_WORDS = {"false", "off", "0", "no", ""}


class FieldProblem(ValueError):
    """A value that does not fit its field; the message is 中文 for the citizen."""


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


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
    if kind in ("text", "textarea", "select", "phone", "date") and not isinstance(value, str):
        raise FieldProblem("应为文本")
    if kind == "number":
        return _clean_number(spec, value)
    text = value.strip()
    if kind == "text":
        limit = spec.get("max_length") or TEXT_MAX
        if len(text) > limit:
            raise FieldProblem(f"不能超过 {limit} 个字")
        return text
    if kind == "textarea":
        limit = spec.get("max_length") or TEXTAREA_MAX
        if len(text) > limit:
            raise FieldProblem(f"不能超过 {limit} 个字")
        return text
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


def _clean_number(spec: dict[str, Any], value: Any) -> int | float:
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
    if not math.isfinite(number) or abs(number) > 1e12:
        raise FieldProblem("请填写合理的数字")
    if spec.get("min") is not None and number < spec["min"]:
        raise FieldProblem(f"不能小于 {spec['min']:g}")
    if spec.get("max") is not None and number > spec["max"]:
        raise FieldProblem(f"不能大于 {spec['max']:g}")
    return int(number) if float(number).is_integer() else float(number)


def clean_form(
    specs: list[dict[str, Any]], submitted: dict[str, Any], *, partial: bool
) -> tuple[dict[str, Any], dict[str, str]]:
    """Clean every submitted value; with `partial=False` required fields must be present.

    Returns the cleaned values (blank ones dropped) and the problems keyed `form.<name>`.
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
            errors[f"form.{name}"] = str(exc)
            continue
        if cleaned is not None:
            values[name] = cleaned
    if not partial:
        errors.update(missing_fields(specs, values))
    return values, errors


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
