"""The one kind of refusal the web app raises, and its JSON form: `{"error": "one line"}` with a status."""

from __future__ import annotations

from starlette.responses import JSONResponse


class ApiError(Exception):
    """A refused request: `status` (HTTP), a one-line `message`, and `headers` to send with it (a 503's
    Retry-After)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def shown(value: str, limit: int = 80) -> str:
    """A header value or a name from a request, quoted and cut short for a one-line message (repr escapes
    control characters)."""
    return repr(value if len(value) <= limit else value[:limit] + "...")
