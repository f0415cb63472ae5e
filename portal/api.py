"""Shared plumbing of the JSON API: bearer tokens and error bodies."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError

from portal.accounts.models import Account
from portal.accounts.service import account_for_token
from portal.db import DbSession
from portal.errors import Unauthenticated

Responses = dict[int | str, dict[str, Any]]


def described(status: int, text: str) -> Responses:
    """One documented error answer of a route, for its OpenAPI `responses=`."""
    return {status: {"description": text}}


ERROR_RESPONSES: Responses = {
    code: {"description": text, "model": None}
    for code, text in {
        401: "未登录或登录已过期",
        404: "不存在（或不属于当前账户）",
        409: "当前状态不允许此操作",
        422: "提交的内容有误",
    }.items()
}


def bearer_token(request: Request) -> str:
    """The token of `Authorization: Bearer <token>`; 401 without one."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(
            "请先登录（缺少 Authorization: Bearer 令牌）。",
            code="unauthenticated",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token.strip()


def api_account(request: Request, session: DbSession) -> Account:
    """The account behind `Authorization: Bearer <token>`; 401 otherwise."""
    account = account_for_token(session, request.app.state.settings, bearer_token(request))
    request.state.account = account
    return account


ApiAccount = Annotated[Account, Depends(api_account)]


_MESSAGES = {
    "missing": "此项为必填项",
    "json_invalid": "请求体不是有效的 JSON",
    "string_type": "应为文本",
    "int_type": "应为整数",
    "int_parsing": "应为整数",
    "int_from_float": "应为整数",
    "float_type": "应为数字",
    "float_parsing": "应为数字",
    "bool_type": "应为 true 或 false",
    "bool_parsing": "应为 true 或 false",
    "dict_type": "应为 JSON 对象",
    "model_type": "应为 JSON 对象",
    "model_attributes_type": "应为 JSON 对象",
    "list_type": "应为列表",
    "literal_error": "取值无效",
    "enum": "取值无效",
    "string_too_short": "内容太短",
    "string_too_long": "内容太长",
    "too_short": "内容太少",
    "too_long": "内容太多",
    "greater_than_equal": "数值太小",
    "less_than_equal": "数值太大",
    "greater_than": "数值太小",
    "less_than": "数值太大",
    "extra_forbidden": "不支持此字段",
    "date_from_datetime_parsing": "日期格式应为 YYYY-MM-DD",
    "date_parsing": "日期格式应为 YYYY-MM-DD",
    "string_pattern_mismatch": "格式不正确",
    "value_error": "格式不正确",
    "uuid_parsing": "格式不正确",
}


def _message(error: dict[str, Any]) -> str:
    kind = str(error.get("type", ""))
    ctx = error.get("ctx") or {}
    text = _MESSAGES.get(kind, "格式不正确")
    if kind == "string_too_short" and "min_length" in ctx:
        text = f"至少需要 {ctx['min_length']} 个字符"
    elif kind == "string_too_long" and "max_length" in ctx:
        text = f"不能超过 {ctx['max_length']} 个字符"
    elif kind in {"greater_than_equal", "greater_than"} and ctx:
        text = f"不能小于 {next(iter(ctx.values()))}"
    elif kind in {"less_than_equal", "less_than"} and ctx:
        text = f"不能大于 {next(iter(ctx.values()))}"
    elif kind in {"literal_error", "enum"} and "expected" in ctx:
        text = f"取值无效，可选：{ctx['expected']}"
    return text


def validation_error_body(exc: RequestValidationError) -> dict[str, Any]:
    """FastAPI's validation errors in the contract's shape, with 中文 reasons per field."""
    fields: dict[str, str] = {}
    for error in exc.errors():
        loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path", "header")]
        # A JSON syntax error's loc is ("body", <character offset>): the body is at fault.
        key = "body" if error.get("type") == "json_invalid" else ".".join(loc) or "body"
        fields.setdefault(key, _message(error))
    message = "请求体不是有效的 JSON。" if "body" in fields else "提交的内容有误，请按提示修改。"
    return {"error": {"code": "invalid", "message": message, "fields": fields}}
