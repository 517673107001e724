"""One error root. Each error carries its HTTP status and OpenAI type/code."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final


class _Unset:
    pass


_UNSET: Final = _Unset()


class FaregateError(Exception):
    status: int = 500
    type: str = "server_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | _Unset | None = _UNSET,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if not isinstance(code, _Unset):
            self.code = code
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, dict[str, str | None]]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}


class InvalidRequest(FaregateError):
    status = 400
    type = "invalid_request_error"


class AuthenticationFailed(FaregateError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDenied(FaregateError):
    """Signed in and a member, but the role or key does not allow this."""

    status = 403
    type = "invalid_request_error"
    code = "permission_denied"


class NotFound(FaregateError):
    status = 404
    type = "invalid_request_error"


class ModelNotFound(NotFound):
    code = "model_not_found"


class InsufficientQuota(FaregateError):
    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"

    def __init__(self, message: str | None = None, *, code: str = "insufficient_quota") -> None:
        super().__init__(
            message
            or "You exceeded your current quota, please check your plan and billing details.",
            code=code,
            headers={"x-should-retry": "false"},
        )


class PaymentRefused(FaregateError):
    """The processor declined a card or a charge; `code` is its decline code."""

    status = 402
    type = "card_error"
    code = "card_declined"


class Conflict(FaregateError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"


class RateLimited(FaregateError):
    status = 429
    type = "requests"
    code = "rate_limit_exceeded"


class PayloadTooLarge(FaregateError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class UpstreamError(FaregateError):
    status = 502
    type = "server_error"
    code = "upstream_error"


class UpstreamUnavailable(FaregateError):
    status = 503
    type = "service_unavailable_error"
    code = "upstream_unavailable"


class DatabaseUnavailable(FaregateError):
    """The database cannot be reached (restarting, failing over, out of connections): the
    request changed nothing and may be retried."""

    status = 503
    type = "server_error"
    code = "service_unavailable"

    def __init__(self) -> None:
        super().__init__("The service is briefly unavailable (its database cannot be reached). "
                         "Nothing was charged; please retry in a moment.",
                         headers={"retry-after": "1"})


class UpstreamTimeout(FaregateError):
    status = 504
    type = "timeout_error"
    code = "upstream_timeout"


class Refused(FaregateError):
    """An operator action that the current state does not allow (CLI exit code 1)."""

    status = 409
    type = "invalid_request_error"
    code = "refused"
