"""RFC 9457 problem details: every error this API returns has the same JSON shape.

    {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "..."}

plus, for validation errors, ``errors: [{"field": ..., "message": ...}]``.
"""

from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

PROBLEM_JSON = "application/problem+json"


def problem(
    status: int,
    detail: str,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, object] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_name(loc: tuple[object, ...]) -> str:
    # ("body", "title") -> "title"; ("path", "post_id") -> "post_id"; ("body", "tags", 2) -> "tags"
    names = [str(part) for part in loc[1:] if isinstance(part, str)] or [str(loc[-1])]
    return names[0]


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        # Headers travel with the problem (a 401's WWW-Authenticate, a 405's Allow).
        return problem(exc.status_code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _field_name(tuple(e["loc"])), "message": e["msg"]} for e in exc.errors()]
        return problem(422, "The request is not valid.", errors)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        # Never send the traceback to the client. Starlette re-raises the exception after this
        # response is sent, so the server still logs the traceback for you.
        return problem(500, "Something went wrong on our side.")
