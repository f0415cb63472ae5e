"""Expected failures: domain exceptions carrying an HTTP status and a 中文 message."""

from __future__ import annotations


class DomainError(Exception):
    """A failure the user can understand; one handler turns it into a page or JSON."""

    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        fields: dict[str, str] | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        if code:
            self.code = code
        self.headers = headers or {}

    def to_json(self) -> dict[str, object]:
        error: dict[str, object] = {"code": self.code, "message": self.message}
        if self.fields:
            error["fields"] = self.fields
        return {"error": error}


class Invalid(DomainError):
    status = 422
    code = "invalid"

    def __init__(
        self, fields: dict[str, str], message: str = "提交的内容有误，请按提示修改。"
    ) -> None:
        super().__init__(message, fields=fields)


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class Unauthenticated(DomainError):
    status = 401
    code = "unauthenticated"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class TooLarge(DomainError):
    status = 413
    code = "too_large"


class BodyTooLarge(TooLarge):
    """A request body past its limit, counted as it arrived (`portal.middleware.BodyLimit`)."""


class UnsupportedType(DomainError):
    status = 415
    code = "unsupported_type"


class Throttled(DomainError):
    status = 429
    code = "too_many_attempts"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, retry_after))})
        self.retry_after = max(1, retry_after)


class Busy(DomainError):
    """Capacity truly exhausted for now: a quick 503 with `Retry-After`, never a long hang."""

    status = 503
    code = "busy"

    def __init__(self, message: str = "系统繁忙，请稍后再试。", *, retry_after: int = 2) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, retry_after))})
        self.retry_after = max(1, retry_after)
